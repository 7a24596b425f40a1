"""Build the kernels agentcg needs (sched_ext, memcg_bpf_ops), cached by a hash of source, patches and config.

A build is: a source tree (Debian's linux-source tarball offline; a git tree at a pinned ref + lore series via b4
online, or a local tree in KERNEL_SRC) -> our patch series applied strictly (never with fuzz) -> virtme-ng's
defconfig + our fragments -> `make bzImage` -> every requested option verified in the final .config and a .BTF
section verified in vmlinux -> bzImage, .config, System.map and the build log copied into the cache.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from agentcg.harness import apt
from agentcg.paths import BPF_SRC, CACHE_DIR

BUILDER_VERSION = "2"  # bump when the build procedure changes what a cached kernel contains
KERNEL_CACHE = CACHE_DIR / "kernels"
BUILD_ROOT = CACHE_DIR / "build"
BUILD_DEPS = ["flex", "bison", "libelf-dev", "libssl-dev", "bc", "cpio", "dwarves", "make", "gcc", "xz-utils",
              "git", "libcap-dev", "libzstd-dev", "zlib1g-dev", "pkg-config", "clang-19", "llvm-19"]


class BuildError(Exception):
    """One clear reason a kernel could not be built."""


@dataclass
class BuildSpec:
    name: str
    source: dict
    patches: list[Path] = field(default_factory=list)
    configs: list[Path] = field(default_factory=list)

    @classmethod
    def from_entry(cls, name: str, entry: dict, repo: Path) -> "BuildSpec":
        try:
            return cls._from_entry(name, entry, repo)
        except OSError as e:  # a path the file system refuses (too long, not a directory, ...)
            raise BuildError(f"kernel {name}: {e.strerror or e}: {e.filename or ''}") from None

    @classmethod
    def _from_entry(cls, name: str, entry: dict, repo: Path) -> "BuildSpec":
        source = entry.get("source")
        if not isinstance(source, dict) or source.get("kind") not in ("debian-source", "git"):
            raise BuildError(f"kernel {name}: source needs kind: debian-source or git")
        if source["kind"] == "git":
            check_git_source(name, source)
        elif not isinstance(source.get("package"), str) or not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", source["package"]):
            raise BuildError(f"kernel {name}: a debian-source needs a package name")
        patches = read_series(_inside(repo, entry["patches"], name, "patches")) if entry.get("patches") else []
        raw_configs = entry.get("configs", [])
        if not isinstance(raw_configs, list):
            raise BuildError(f"kernel {name}: configs must be a list of paths")
        configs = [_inside(repo, c, name, "config fragment") for c in raw_configs]
        for path in configs:
            if not path.is_file():
                raise BuildError(f"kernel {name}: config fragment {path} is missing")
        return cls(name, source, patches, configs)


def _inside(repo: Path, rel, name: str, what: str) -> Path:
    """A path kernels.yaml names: relative, and inside the repository."""
    if not isinstance(rel, str) or not rel or "\0" in rel or Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise BuildError(f"kernel {name}: {what} must be a path inside the repository, not {rel!r}")
    return repo / rel


def read_series(patch_dir: Path) -> list[Path]:
    """Patches in the order of patch_dir/series (quilt style: one file name a line, # comments)."""
    series = patch_dir / "series"
    if not series.is_file():
        raise BuildError(f"patch series {series} is missing")
    try:
        text = series.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BuildError(f"patch series {series} cannot be read ({e})") from None
    names = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    for n in names:
        if "/" in n or n in (".", ".."):
            raise BuildError(f"{series} lists {n!r}: a patch is a file name in {patch_dir}")
    patches = [patch_dir / n for n in names if n]
    for p in patches:
        if not p.is_file():
            raise BuildError(f"{series} lists {p.name}, which does not exist")
    return patches


# ---- identity and cache -------------------------------------------------------------------------------------

def source_identity(spec: BuildSpec) -> str:
    src = spec.source
    if os.environ.get("KERNEL_SRC") and src["kind"] == "git":
        tree = Path(os.environ["KERNEL_SRC"])
        head = _run(["git", "-C", str(tree), "rev-parse", "HEAD"], check=False).stdout.strip()
        return f"local:{tree}@{head or 'unversioned'}"
    if src["kind"] == "debian-source":
        version = debian_package_version(src["package"])
        return f"debian:{src['package']}={version or 'not-installed'}"
    return f"git:{src['url']}@{pinned_ref(spec.name, src)}+b4:{','.join(src.get('series', []))}"


COMMIT_RX = re.compile(r"[0-9a-f]{40}")
_pins: dict[tuple[str, str], str] = {}


def pinned_ref(name: str, src: dict) -> str:
    """A git source's ref as the cache key records it: a commit or a tag (`v…`) as given; a branch (bpf-next's
    `master`) moves, so it is resolved online to the commit it points at now (`master=<sha>`), and a build pins
    that commit (the fetch must find the branch still there). Offline, a branch cannot be pinned: one clear error
    naming what could not be reached."""
    ref = src["ref"]
    if COMMIT_RX.fullmatch(ref) or re.fullmatch(r"v\d[\w.-]*", ref):
        return ref
    key = (src["url"], ref)
    if key not in _pins:
        check_git_source(name, src)
        got = _run(["git", "ls-remote", "--", src["url"], f"refs/heads/{ref}"], check=False, timeout=60,
                   env_extra={"GIT_HTTP_LOW_SPEED_LIMIT": "1000", "GIT_HTTP_LOW_SPEED_TIME": "20"})
        sha = got.stdout.split()[0] if got.returncode == 0 and got.stdout.split() else ""
        if not COMMIT_RX.fullmatch(sha):
            raise BuildError(f"kernel {name}: cannot pin branch {ref!r} of {src['url']} to a commit "
                             f"({_last_line(got.stderr) or 'no such branch'}); a branch is built at the commit it "
                             "points at, recorded in the cache key, so it needs the network (or name a commit "
                             "or tag as ref in kernel/kernels.yaml)")
        _pins[key] = sha
    return f"{ref}={_pins[key]}"


def build_key(spec: BuildSpec) -> str:
    h = hashlib.sha256()
    h.update(f"builder {BUILDER_VERSION}\nsource {source_identity(spec)}\n".encode())
    for p in spec.patches:
        h.update(f"patch {p.name}\n".encode() + p.read_bytes())
    for c in spec.configs:
        h.update(f"config {c.name}\n".encode() + c.read_bytes())
    return h.hexdigest()


def cache_dir(spec: BuildSpec) -> Path:
    return KERNEL_CACHE / f"{spec.name}-{build_key(spec)[:16]}"


def cached_image(spec: BuildSpec) -> Path | None:
    out = cache_dir(spec)
    if (out / "bzImage").is_file() and (out / "manifest.json").is_file():
        return out / "bzImage"
    return None


# ---- config fragments -----------------------------------------------------------------------------------------

def parse_config(text: str) -> dict[str, str]:
    """CONFIG_X=y / CONFIG_X="s" / '# CONFIG_X is not set' -> {CONFIG_X: value}; 'n' for not set."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        m = re.fullmatch(r"# (CONFIG_\w+) is not set", line)
        if m:
            out[m.group(1)] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def config_mismatches(requested: dict[str, str], final: dict[str, str]) -> list[str]:
    """Every requested option whose final value differs ('n' requested also matches absent)."""
    bad = []
    for key, want in requested.items():
        got = final.get(key, "n")
        if got != want:
            bad.append(f"{key}={want} requested, final .config has {key}={got}" if got != "n"
                       else f"{key}={want} requested, but it is not set in the final .config")
    return bad


def requested_options(spec: BuildSpec) -> dict[str, str]:
    opts: dict[str, str] = {}
    for c in spec.configs:
        opts.update(parse_config(c.read_text()))
    return opts


# ---- the build ------------------------------------------------------------------------------------------------

def build(spec: BuildSpec, jobs: int | None = None, log=print) -> Path:
    """Build (or reuse) the kernel; returns the cached bzImage path."""
    hit = cached_image(spec)
    if hit:
        log(f"kernel {spec.name}: cached build {hit.parent.name}")
        return hit
    ensure_build_deps()
    started = time.monotonic()
    tree = prepare_tree(spec, log)
    configure(tree, spec, log)
    out = cache_dir(spec)
    tmp_log = BUILD_ROOT / f"{spec.name}.build.log"
    make_bzimage(tree, tmp_log, jobs or os.cpu_count() or 2, log)
    verify_build(tree, spec)
    out.mkdir(parents=True, exist_ok=True)
    build_bpf_toolchain(tree, out / "tools", log)
    for name, src in [("bzImage", tree / "arch/x86/boot/bzImage"), ("config", tree / ".config"),
                      ("System.map", tree / "System.map"), ("build.log", tmp_log)]:
        shutil.copy2(src, out / name)
    seconds = round(time.monotonic() - started, 1)
    (out / "manifest.json").write_text(json.dumps({
        "name": spec.name, "key": build_key(spec), "source": source_identity(spec), "tree": str(tree),
        "patches": [p.name for p in spec.patches], "configs": [c.name for c in spec.configs],
        "build_seconds": seconds, "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=1))
    log(f"kernel {spec.name}: built in {seconds} s -> {out}")
    return out / "bzImage"


def tree_dir(spec: BuildSpec) -> Path:
    return BUILD_ROOT / spec.name / "src"


def prepare_tree(spec: BuildSpec, log) -> Path:
    """A tree at the pristine base (committed as git tag agentcg-base), reset to it before patching."""
    if spec.source["kind"] == "git" and os.environ.get("KERNEL_SRC"):
        return _local_tree(Path(os.environ["KERNEL_SRC"]))
    tree = tree_dir(spec)
    stamp = tree / ".agentcg-source"
    if spec.source["kind"] == "debian-source" and not debian_package_version(spec.source["package"]):
        # installed before its version names the tree: a stamp saying "not-installed" would make the next
        # build throw the tree away and build everything again
        _apt_install([spec.source["package"]])
    identity = source_identity(spec)
    if not (stamp.is_file() and stamp.read_text() == identity):
        if tree.exists():
            shutil.rmtree(tree)
        tree.mkdir(parents=True)
        if spec.source["kind"] == "debian-source":
            _extract_debian_source(spec, tree, log)
        else:
            _fetch_git_source(spec, tree, log)
        _git(tree, "init", "-q")
        _git(tree, "add", "-A", "-f")  # Debian's tarball ships a .gitignore that ignores everything
        _git(tree, "-c", "user.name=agentcg", "-c", "user.email=agentcg@localhost", "commit", "-q", "--no-verify",
             "-m", f"base: {identity}")
        _git(tree, "tag", "-f", "agentcg-base")
        stamp.write_text(identity)
    # The series already applied leaves the tree as it is: re-applying would touch mm/ and header mtimes and
    # cost minutes of rebuild. Otherwise back to the base (only differing files are rewritten) and apply.
    series_stamp = tree / ".agentcg-series"
    series_hash = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in spec.patches)).hexdigest()
    if series_stamp.is_file() and series_stamp.read_text() == series_hash:
        log(f"kernel {spec.name}: patch series already applied")
        return tree
    series_stamp.unlink(missing_ok=True)
    _git(tree, "reset", "-q", "--hard", "agentcg-base")
    apply_series(tree, spec.patches, log)
    series_stamp.write_text(series_hash)
    return tree


def _local_tree(tree: Path) -> Path:
    if not (tree / "Makefile").is_file() or not (tree / "mm").is_dir():
        raise BuildError(f"KERNEL_SRC={tree} is not a kernel source tree")
    return tree


def _extract_debian_source(spec: BuildSpec, tree: Path, log) -> None:
    package = spec.source["package"]  # installed by prepare_tree, before its version named the tree
    tarballs = sorted(Path("/usr/src").glob(f"{package}.tar.*"))
    if not tarballs:
        raise BuildError(f"{package} is installed but /usr/src/{package}.tar.* is missing")
    log(f"kernel {spec.name}: extracting {tarballs[0]} (once per source version)")
    _run(["tar", "-xf", str(tarballs[0]), "-C", str(tree), "--strip-components=1"])


MSGID_RX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+=-]*@[A-Za-z0-9][A-Za-z0-9.-]*")
REF_RX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def check_git_source(name: str, src: dict) -> None:
    """A git source's URL, ref and series as kernels.yaml may give them: an https:// (or a local mirror's file://)
    URL, never an option or a transport that runs commands (ext::); a ref git cannot read as an option; lore
    message ids (never a path or an option to b4)."""
    url, ref, series = src.get("url"), src.get("ref"), src.get("series", [])
    if not isinstance(url, str) or not url.startswith(("https://", "file:///")) or any(c.isspace() for c in url):
        raise BuildError(f"kernel {name}: source url must be an https:// or file:/// URL, not {url!r}")
    if not isinstance(ref, str) or not REF_RX.fullmatch(ref) or ".." in ref:
        raise BuildError(f"kernel {name}: source ref {ref!r} is not a branch, tag or commit name")
    if not isinstance(series, list) or not all(isinstance(m, str) and MSGID_RX.fullmatch(m) for m in series):
        raise BuildError(f"kernel {name}: series must be lore message ids (local@domain), not {series!r}")


def _fetch_git_source(spec: BuildSpec, tree: Path, log) -> None:
    """Online only: the pinned ref from git, then each lore series through b4. Offline: one clear error."""
    src = spec.source
    check_git_source(spec.name, src)
    hint = (f"provide a local tree instead: KERNEL_SRC=/path/to/linux make kernel KERNEL={spec.name} "
            "(with the series already applied)")
    log(f"kernel {spec.name}: fetching {src['url']} at {src['ref']}")
    _git(tree, "init", "-q")
    fetch = _run(["git", "-C", str(tree), "fetch", "--depth", "1", "--", src["url"], src["ref"]], check=False,
                 timeout=600, env_extra={"GIT_HTTP_LOW_SPEED_LIMIT": "1000", "GIT_HTTP_LOW_SPEED_TIME": "20"})
    if fetch.returncode != 0:
        shutil.rmtree(tree, ignore_errors=True)
        raise BuildError(f"kernel {spec.name}: cannot fetch {src['url']} ({src['ref']}): "
                         f"{_last_line(fetch.stderr)}; {hint}")
    pinned = pinned_ref(spec.name, src).rpartition("=")[2]
    head = _run(["git", "-C", str(tree), "rev-parse", "FETCH_HEAD"], check=False).stdout.strip()
    if COMMIT_RX.fullmatch(pinned) and head != pinned:
        shutil.rmtree(tree, ignore_errors=True)
        raise BuildError(f"kernel {spec.name}: {src['ref']} of {src['url']} moved from {pinned[:12]} to "
                         f"{head[:12]} while building; run the build again")
    _git(tree, "checkout", "-q", "FETCH_HEAD")
    for msgid in src.get("series", []):
        if not shutil.which("b4"):
            raise BuildError(f"kernel {spec.name}: b4 is needed to fetch series {msgid}: pip install b4; {hint}")
        mbox = tree.parent / f"{msgid}.mbx"
        got = _run(["b4", "am", "-o", "-", "--", msgid], check=False, timeout=300)
        if got.returncode != 0 or not got.stdout.strip():
            shutil.rmtree(tree, ignore_errors=True)
            raise BuildError(f"kernel {spec.name}: b4 could not fetch series {msgid} from lore: "
                             f"{_last_line(got.stderr)}; {hint}")
        mbox.write_text(got.stdout)
        _git(tree, "-c", "user.name=agentcg", "-c", "user.email=agentcg@localhost", "am", "-q", str(mbox))
    # The fetched tree becomes its own base commit (prepare_tree commits it again as agentcg-base).
    shutil.rmtree(tree / ".git")


def apply_series(tree: Path, patches: list[Path], log) -> None:
    """Each patch must apply exactly (git apply allows no fuzz); the first that does not stops the build."""
    # Files the series creates are untracked leftovers of the previous application: reset --hard keeps them.
    for p in patches:
        summary = _run(["git", "-C", str(tree), "apply", "--summary", str(p)], check=False).stdout
        for created in re.findall(r"^ create mode \d+ (\S+)$", summary, re.M):
            (tree / created).unlink(missing_ok=True)
    for p in patches:
        check = _run(["git", "-C", str(tree), "apply", "--check", str(p)], check=False)
        if check.returncode != 0:
            raise BuildError(f"patch {p.name} does not apply exactly to the {tree.parent.name} base:\n"
                             f"{check.stderr.strip()}")
        _run(["git", "-C", str(tree), "apply", str(p)])
        log(f"  applied {p.name}")


def configure(tree: Path, spec: BuildSpec, log) -> None:
    """virtme-ng's defconfig with our fragments merged on top, then olddefconfig; verified before building."""
    merged = tree / ".agentcg.config"
    merged.write_text("".join(c.read_text() + "\n" for c in spec.configs))
    configkernel = Path(sys.executable).parent / "virtme-configkernel"
    before = (tree / ".config").read_bytes() if (tree / ".config").exists() else None
    _run([str(configkernel if configkernel.exists() else "virtme-configkernel"), "--defconfig",
          "--custom", str(merged)], cwd=tree)
    _run(["make", "olddefconfig"], cwd=tree)
    bad = config_mismatches(requested_options(spec), parse_config((tree / ".config").read_text()))
    if bad:
        raise BuildError(f"kernel {spec.name}: config options missing after configuration (a dependency is "
                         "not met):\n  " + "\n  ".join(bad))
    if before is not None and before == (tree / ".config").read_bytes():
        log("  .config unchanged")


def make_bzimage(tree: Path, log_path: Path, jobs: int, log) -> None:
    """make bzImage with a live line count; the whole output goes to the build log."""
    log(f"  make -j{jobs} bzImage (log: {log_path})")
    compiled, last_report = 0, time.monotonic()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(["make", f"-j{jobs}", "bzImage"], cwd=tree, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        for line in proc.stdout:
            out.write(line)
            if line.startswith("  CC "):
                compiled += 1
            if time.monotonic() - last_report > 30:
                log(f"  ... {compiled} objects compiled, at: {line.strip()[:80]}")
                last_report = time.monotonic()
        rc = proc.wait()
    if rc != 0:
        errors = [ln for ln in log_path.read_text(errors="replace").splitlines() if "error" in ln.lower()]
        raise BuildError(f"make bzImage failed ({rc}); first errors:\n  " + "\n  ".join(errors[:10]) +
                         f"\nfull log: {log_path}")
    log(f"  {compiled} objects compiled")


def verify_build(tree: Path, spec: BuildSpec) -> None:
    """After the build: every requested option is in the final .config, and vmlinux carries BTF."""
    bad = config_mismatches(requested_options(spec), parse_config((tree / ".config").read_text()))
    if bad:
        raise BuildError(f"kernel {spec.name}: built .config lacks requested options:\n  " + "\n  ".join(bad))
    sections = _run(["readelf", "-S", "--wide", str(tree / "vmlinux")]).stdout
    if not re.search(r"\s\.BTF\s", sections):
        raise BuildError(f"kernel {spec.name}: vmlinux has no .BTF section (pahole missing or too old?)")


def build_bpf_toolchain(tree: Path, tools: Path, log) -> None:
    """libbpf, bpftool, the uapi headers and vmlinux.h of this very tree, so BPF programs match the kernel.

    Debian's libbpf 1.1 and bpftool 7.1 predate struct_ops links; the tree's own tools/ know every type and flag
    the kernel has, including the ones our patch series adds.
    """
    log("  building libbpf and bpftool from the tree's tools/")
    if tools.exists():
        shutil.rmtree(tools)
    (tools / "libbpf").mkdir(parents=True)
    (tools / "bpftool").mkdir()
    jobs = f"-j{os.cpu_count() or 2}"
    _run(["make", "-s", "-C", "tools/lib/bpf", jobs, f"OUTPUT={tools}/libbpf/", f"{tools}/libbpf/libbpf.a"], cwd=tree)
    _run(["make", "-s", "-C", "tools/lib/bpf", "install_headers", f"DESTDIR={tools}", "prefix=",
          f"OUTPUT={tools}/libbpf/"], cwd=tree)
    _run(["make", "-s", "-C", "tools/bpf/bpftool", jobs, f"OUTPUT={tools}/bpftool/"], cwd=tree)
    # Only linux/: the tree's asm headers include arch/ paths relative to the tree.
    shutil.copytree(tree / "tools/include/uapi/linux", tools / "uapi" / "linux")
    header = _run([str(tools / "bpftool" / "bpftool"), "btf", "dump", "file", str(tree / "vmlinux"), "format", "c"])
    (tools / "vmlinux.h").write_text(header.stdout)


def clean(name: str | None = None) -> list[Path]:
    """Remove cached kernels and build trees (all, or one kernel's)."""
    removed = []
    for root in (KERNEL_CACHE, BUILD_ROOT):
        if not root.is_dir():
            continue
        for entry in root.iterdir():
            if name is None or entry.name == name or entry.name.startswith(f"{name}-") \
                    or entry.name.startswith(f"{name}."):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                removed.append(entry)
    return removed


# ---- host helpers ---------------------------------------------------------------------------------------------

def debian_package_version(package: str) -> str | None:
    proc = _run(["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", package], check=False)
    status, _, version = proc.stdout.partition(" ")
    return version if proc.returncode == 0 and status == "installed" else None


def ensure_build_deps() -> None:
    missing = [p for p in BUILD_DEPS if not debian_package_version(p)]
    if missing:
        _apt_install(missing)


def _apt_install(packages: list[str]) -> None:
    try:
        apt.install(packages)
    except apt.AptError as e:
        raise BuildError(str(e))


def _git(tree: Path, *args: str) -> None:
    _run(["git", "-C", str(tree), *args])


def _run(cmd: list[str], cwd: Path | None = None, check: bool = True, timeout: float | None = None,
         env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout,
                              env=env)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} is not installed")
    except subprocess.TimeoutExpired:
        raise BuildError(f"{' '.join(cmd[:4])} timed out after {timeout} s")
    if check and proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd[:6])} failed ({proc.returncode}): {_last_line(proc.stderr)}")
    return proc


def _last_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


# ---- bpf/ built against a kernel's toolchain (AGENTCG_BPF_DIR for the guest) -----------------------------------

def build_bpf_objects(tools_dir: Path) -> Path:
    """Build bpf/ against a kernel's toolchain directory; returns the directory holding objects and loader.
    One build at a time per kernel (make test boots several VMs of one kernel at once)."""
    with open(tools_dir.parent / ".bpf-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(["make", "-s", "-C", str(BPF_SRC), f"TOOLS={tools_dir}"],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"building bpf/ against {tools_dir}: {proc.stderr.strip()[-2000:]}")
    return tools_dir.parent / "bpf"


def bpf_env(image: Path) -> dict[str, str]:
    """The guest environment that points agentcg at a kernel's BPF objects (empty for a kernel without them)."""
    objects = bpf_objects_for(image)
    return {"AGENTCG_BPF_DIR": str(objects)} if objects else {}


def bpf_objects_for(image: Path) -> Path | None:
    """Kernels we build carry their own toolchain next to the image: build bpf/ against it (None: a kernel
    without one, e.g. Debian's)."""
    tools = Path(image).parent / "tools"
    if not (tools / "vmlinux.h").is_file():
        return None
    return build_bpf_objects(tools)
