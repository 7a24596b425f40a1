import pytest

from agentcg.harness import kernels


def write_table(tmp_path, text):
    p = tmp_path / "kernels.yaml"
    p.write_text(text)
    return p


def test_shipped_table_loads_and_names_debian_kernels():
    table = kernels.load_table()
    assert {"debian-6.12", "debian-6.1"} <= set(table)
    assert all(e["kind"] in kernels.KINDS for e in table.values())


def test_invalid_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(kernels.KernelError, match="not valid YAML"):
        kernels.load_table(write_table(tmp_path, "a: [unclosed"))


def test_entry_without_kind_is_rejected(tmp_path):
    with pytest.raises(kernels.KernelError, match="needs kind"):
        kernels.load_table(write_table(tmp_path, "k:\n  package: x\n"))


def test_unknown_name_lists_the_choices():
    with pytest.raises(kernels.KernelError, match=r"unknown kernel 'nope'.*debian-6.12"):
        kernels.resolve("nope", table=kernels.load_table(), install=False)


def test_path_to_an_image_resolves_without_declarations(tmp_path):
    image = tmp_path / "bzImage"
    image.write_bytes(b"\0")
    k = kernels.resolve(str(image), table={})
    assert k.image == image and k.features is None and k.slug == "bzImage"


def test_release_and_version_order():
    assert kernels.debian_release("linux-image-6.12.117+deb12-amd64-unsigned") == "6.12.117+deb12-amd64"
    assert kernels.debian_release("linux-image-6.1.0-56-amd64-unsigned") == "6.1.0-56-amd64"
    names = ["linux-image-6.12.9+deb12-amd64-unsigned", "linux-image-6.12.117+deb12-amd64-unsigned"]
    assert sorted(names, key=kernels.version_key)[-1] == names[1]
    with pytest.raises(kernels.KernelError):
        kernels.debian_release("not-a-kernel")


@pytest.mark.parametrize("extra, message", [
    ("  slowness: 0.5\n", "slowness must be a number from 1 to 50"),
    ("  slowness: fast\n", "slowness must be a number from 1 to 50"),
    ("  tests: [/etc/passwd]\n", "tests must be a list of paths under vmtests/"),
])
def test_a_kernels_slowness_and_default_tests_are_checked(tmp_path, extra, message):
    with pytest.raises(kernels.KernelError, match=message):
        kernels.load_table(write_table(tmp_path, "k:\n  kind: debian\n  package: x\n" + extra))


def test_the_sanitizer_kernel_runs_the_conformance_suite_with_longer_bounds():
    table = kernels.load_table()
    assert kernels.default_tests("agentcg-6.12-debug", table) == ["vmtests/test_memcg_bpf_ops.py"]
    assert table["agentcg-6.12-debug"]["slowness"] > 1
    assert kernels.default_tests("debian-6.12", table) == [], "every vmtest"
