"""The kernel pipeline's decisions, without building a kernel: strict patches, config verification, cache keys,
and clear errors for a corrupted patch, a missing option and an unreachable git/b4 source."""
import subprocess
import shutil

import pytest

from agentcg.harness import kbuild, kernels

FRAGMENT = "CONFIG_MEMCG=y\nCONFIG_SCHED_CLASS_EXT=y\n# CONFIG_KASAN is not set\n"


def spec_with(tmp_path, patches=(), fragment=FRAGMENT, source=None):
    cfg = tmp_path / "frag.config"
    cfg.write_text(fragment)
    return kbuild.BuildSpec("t", source or {"kind": "debian-source", "package": "linux-source-6.12"},
                            list(patches), [cfg])


def test_config_parsing_and_mismatches():
    final = kbuild.parse_config("CONFIG_MEMCG=y\n# CONFIG_SCHED_CLASS_EXT is not set\nCONFIG_HZ=250\n")
    assert final == {"CONFIG_MEMCG": "y", "CONFIG_SCHED_CLASS_EXT": "n", "CONFIG_HZ": "250"}
    bad = kbuild.config_mismatches(kbuild.parse_config(FRAGMENT), final)
    assert bad == ["CONFIG_SCHED_CLASS_EXT=y requested, but it is not set in the final .config"]


def test_shipped_fragment_asks_for_what_agentcg_needs():
    opts = kbuild.parse_config((kernels.REPO_ROOT / "kernel/configs/agentcg.config").read_text())
    for key in ("CONFIG_BPF_SYSCALL", "CONFIG_BPF_JIT", "CONFIG_DEBUG_INFO_BTF", "CONFIG_MEMCG", "CONFIG_PSI",
                "CONFIG_CGROUP_BPF", "CONFIG_SCHED_CLASS_EXT", "CONFIG_CGROUP_FREEZER", "CONFIG_KPROBES"):
        assert opts.get(key) == "y", key


def test_verify_build_reports_a_missing_option_and_missing_btf(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".config").write_text("CONFIG_MEMCG=y\n")
    shutil.copy("/bin/true", tree / "vmlinux")
    spec = spec_with(tmp_path)
    with pytest.raises(kbuild.BuildError, match="CONFIG_SCHED_CLASS_EXT=y requested"):
        kbuild.verify_build(tree, spec)
    (tree / ".config").write_text("CONFIG_MEMCG=y\nCONFIG_SCHED_CLASS_EXT=y\n")
    with pytest.raises(kbuild.BuildError, match="no .BTF section"):
        kbuild.verify_build(tree, spec)


def make_tree(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    (tree / "mm.c").write_text("".join(f"line {i}\n" for i in range(1, 21)))
    return tree


def write_patch(tmp_path, name, old_line, new_line):
    p = tmp_path / name
    p.write_text(f"--- a/mm.c\n+++ b/mm.c\n@@ -9,5 +9,5 @@\n line 9\n line 10\n-{old_line}\n+{new_line}\n"
                 " line 12\n line 13\n")
    return p


def test_series_applies_in_order(tmp_path):
    tree = make_tree(tmp_path)
    good = write_patch(tmp_path, "0001-a.patch", "line 11", "line eleven")
    kbuild.apply_series(tree, [good], log=lambda m: None)
    assert "line eleven\n" in (tree / "mm.c").read_text()


def test_patch_that_needs_fuzz_is_rejected(tmp_path):
    tree = make_tree(tmp_path)
    (tree / "mm.c").write_text((tree / "mm.c").read_text().replace("line 12\n", "line twelve\n"))
    fuzzy = write_patch(tmp_path, "0001-fuzzy.patch", "line 11", "line eleven")
    with pytest.raises(kbuild.BuildError, match="0001-fuzzy.patch does not apply exactly"):
        kbuild.apply_series(tree, [fuzzy], log=lambda m: None)
    assert "line 11\n" in (tree / "mm.c").read_text(), "nothing applied"


def test_corrupted_patch_is_a_clear_error(tmp_path):
    tree = make_tree(tmp_path)
    bad = tmp_path / "0002-corrupt.patch"
    bad.write_text("--- a/mm.c\n+++ b/mm.c\n@@ -9,5 +9,5 @@\n garbage\n")
    with pytest.raises(kbuild.BuildError, match="0002-corrupt.patch does not apply exactly"):
        kbuild.apply_series(tree, [bad], log=lambda m: None)


def test_series_file_lists_existing_patches(tmp_path):
    (tmp_path / "series").write_text("# comment\n0001-a.patch\n\n0002-b.patch  # trailing\n")
    (tmp_path / "0001-a.patch").write_text("")
    with pytest.raises(kbuild.BuildError, match="lists 0002-b.patch, which does not exist"):
        kbuild.read_series(tmp_path)
    (tmp_path / "0002-b.patch").write_text("")
    assert [p.name for p in kbuild.read_series(tmp_path)] == ["0001-a.patch", "0002-b.patch"]


def test_cache_key_follows_patches_and_config(tmp_path):
    patch = tmp_path / "0001.patch"
    patch.write_text("one")
    spec = spec_with(tmp_path, [patch])
    key = kbuild.build_key(spec)
    assert kbuild.build_key(spec) == key, "stable"
    patch.write_text("two")
    assert kbuild.build_key(spec) != key
    key2 = kbuild.build_key(spec)
    (tmp_path / "frag.config").write_text(FRAGMENT + "CONFIG_PSI=y\n")
    assert kbuild.build_key(spec) != key2


def test_unreachable_git_source_fails_fast_naming_the_source_and_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setattr(kbuild, "BUILD_ROOT", tmp_path / "build")
    monkeypatch.delenv("KERNEL_SRC", raising=False)
    spec = spec_with(tmp_path, source={"kind": "git", "url": f"file://{tmp_path}/no-such-repo.git",
                                       "ref": "v6.19-rc5", "series": ["cover.1.git.x@y"]})
    with pytest.raises(kbuild.BuildError) as err:
        kbuild.prepare_tree(spec, log=lambda m: None)
    text = str(err.value)
    assert "cannot fetch" in text and "no-such-repo.git" in text and "KERNEL_SRC=" in text
    assert not (tmp_path / "build" / "t" / "src").exists(), "no half-made tree left behind"


def test_a_fresh_tree_is_named_by_the_installed_source_version(tmp_path, monkeypatch):
    """On a fresh machine the source package is installed during the first build: the tree's stamp must carry
    its version, or the next build discards the tree and builds everything again."""
    monkeypatch.setattr(kbuild, "BUILD_ROOT", tmp_path / "build")
    installed = {}
    monkeypatch.setattr(kbuild, "debian_package_version", lambda p: installed.get(p))
    monkeypatch.setattr(kbuild, "_apt_install", lambda ps: installed.update({p: "6.12.117-1" for p in ps}))
    monkeypatch.setattr(kbuild, "_extract_debian_source", lambda spec, tree, log: (tree / "Makefile").write_text(""))
    spec = spec_with(tmp_path, source={"kind": "debian-source", "package": "linux-source-6.12"})
    tree = kbuild.prepare_tree(spec, log=lambda m: None)
    assert (tree / ".agentcg-source").read_text() == "debian:linux-source-6.12=6.12.117-1"
    assert kbuild.source_identity(spec) == (tree / ".agentcg-source").read_text()


def test_local_tree_must_be_a_kernel_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("KERNEL_SRC", str(tmp_path))
    spec = spec_with(tmp_path, source={"kind": "git", "url": "x", "ref": "y"})
    with pytest.raises(kbuild.BuildError, match="not a kernel source tree"):
        kbuild.prepare_tree(spec, log=lambda m: None)


def test_table_build_entries_are_well_formed():
    table = kernels.load_table()
    for name, entry in table.items():
        if entry["kind"] == "build":
            spec = kbuild.BuildSpec.from_entry(name, entry, kernels.REPO_ROOT)
            assert spec.configs, name
    assert "sched_ext" in table["agentcg-6.12"]["features"]


def test_series_that_creates_a_file_applies_again_after_a_reset(tmp_path):
    tree = make_tree(tmp_path)
    new = tmp_path / "0001-new.patch"
    new.write_text("diff --git a/mm/new.c b/mm/new.c\nnew file mode 100644\n--- /dev/null\n+++ b/mm/new.c\n"
                   "@@ -0,0 +1,1 @@\n+int x;\n")
    kbuild.apply_series(tree, [new], log=lambda m: None)
    assert (tree / "mm/new.c").read_text() == "int x;\n"
    # a reset to the base keeps untracked files; applying the series again must not trip over them
    kbuild.apply_series(tree, [new], log=lambda m: None)
    assert (tree / "mm/new.c").read_text() == "int x;\n"


# kernels.yaml's git sources reach git and b4 as arguments: nothing in them may be read as an option or a path.
@pytest.mark.parametrize("field, value", [
    ("url", "--upload-pack=touch /tmp/x"), ("url", "http://example.org/linux.git"), ("url", "ext::sh -c touch% /tmp/x"), ("url", "https://a b"),
    ("ref", "--output=/etc/passwd"), ("ref", "-x"), ("ref", "a..b"), ("ref", ""),
    ("series", ["-o/tmp/x"]), ("series", ["../../etc/passwd"]), ("series", "one@lore"), ("series", [3]),
])
def test_git_sources_that_could_smuggle_options_are_refused(field, value):
    from agentcg.harness.kbuild import BuildError, check_git_source
    src = {"kind": "git", "url": "https://git.kernel.org/pub/scm/linux/kernel/git/bpf/bpf-next.git", "ref": "master",
           "series": ["cover.1779760876.git.zhuhui@kylinos.cn"]}
    check_git_source("k", src)
    with pytest.raises(BuildError, match="kernel k: "):
        check_git_source("k", {**src, field: value})


def test_a_branch_is_pinned_to_its_commit_in_the_key_a_tag_or_commit_as_given(tmp_path):
    repo = tmp_path / "up.git"
    subprocess.run(["git", "init", "-q", "-b", "master", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "one"], check=True)
    sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    src = {"kind": "git", "url": f"file://{repo}", "ref": "master"}
    assert kbuild.pinned_ref("k", src) == f"master={sha}"
    spec = spec_with(tmp_path, source=src)
    assert f"@master={sha}" in kbuild.source_identity(spec), "the commit is in what the cache key hashes"
    assert kbuild.pinned_ref("k", {**src, "ref": "v6.19-rc5"}) == "v6.19-rc5"
    assert kbuild.pinned_ref("k", {**src, "ref": "a" * 40}) == "a" * 40
    with pytest.raises(kbuild.BuildError, match=r"cannot pin branch 'master' of file://.*/gone.git"):
        kbuild.pinned_ref("k", {**src, "url": f"file://{tmp_path}/gone.git"})
