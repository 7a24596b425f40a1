"""Named kernels: resolve `debian-6.12`, `debian-6.1`, ... (kernel/kernels.yaml) or a bzImage path to an image.

This is the one place that decides which image a kernel name boots and what that kernel is declared to have.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agentcg.config import parse_yaml, read_text
from agentcg.harness import apt
from agentcg.paths import REPO_ROOT

TABLE_PATH = REPO_ROOT / "kernel" / "kernels.yaml"
KINDS = ("debian", "build")
ENTRY_KEYS = {"debian": {"kind", "package", "features", "tests", "slowness"},
              "build": {"kind", "source", "patches", "configs", "features", "tests", "slowness"}}
NAME_RX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class KernelError(Exception):
    """A kernel name or path that cannot be turned into a bootable image."""


@dataclass(frozen=True)
class Kernel:
    name: str
    image: Path
    release: str | None = None
    # What the kernel is declared to have; None for a bare path (nothing declared).
    features: frozenset[str] | None = None
    # How much slower than a plain kernel it runs (a sanitizer kernel): every time bound is multiplied by it too.
    slowness: float = 1.0

    @property
    def slug(self) -> str:
        return slug(self.name)


def slug(name_or_path: str) -> str:
    """A name safe for result directories: table names as they are, paths by their file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name_or_path).name).strip("_") or "kernel"


def load_table(path: Path = TABLE_PATH) -> dict[str, dict]:
    if not Path(path).exists():
        raise KernelError(f"kernel table {path} is missing")
    data = parse_yaml(read_text(path, KernelError), f"kernel table {path}", KernelError)
    if not isinstance(data, dict):
        raise KernelError(f"kernel table {path}: expected a mapping of kernel names")
    for name, entry in data.items():
        at = f"kernel table {path}: entry {name!r}"
        if not isinstance(name, str) or not NAME_RX.fullmatch(name):
            raise KernelError(f"{at}: a kernel name is letters, digits, '.', '_', '-'")
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
            raise KernelError(f"{at} needs kind: one of {', '.join(KINDS)}")
        unknown = set(entry) - ENTRY_KEYS[entry["kind"]]
        if unknown:
            raise KernelError(f"{at}: unknown keys {sorted(map(str, unknown))}")
        if entry["kind"] == "debian" and not isinstance(entry.get("package"), str):
            raise KernelError(f"{at} needs a package pattern")
        if entry["kind"] == "debian":
            try:
                re.compile(entry["package"])
            except (re.error, RecursionError) as e:
                raise KernelError(f"{at}: package is not a regular expression ({e})") from None
        if entry["kind"] == "build" and not isinstance(entry.get("source"), dict):
            raise KernelError(f"{at} needs a source mapping")
        features = entry.get("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise KernelError(f"{at}: features must be a list of names")
        slow = entry.get("slowness", 1)
        if isinstance(slow, bool) or not isinstance(slow, (int, float)) or not 1 <= slow <= 50:
            raise KernelError(f"{at}: slowness must be a number from 1 to 50")
        tests = entry.get("tests", [])
        if not isinstance(tests, list) or not all(isinstance(t, str) and t.startswith("vmtests/") for t in tests):
            raise KernelError(f"{at}: tests must be a list of paths under vmtests/")
    return data


def default_tests(name: str, table: dict | None = None) -> list[str]:
    """What `agentcg vmtest --kernel NAME` runs when no test is named: the kernel's `tests` (a sanitizer kernel's
    conformance suite), else every vmtest (an empty list)."""
    try:
        entry = (table if table is not None else load_table()).get(name)
    except KernelError:
        return []
    return list(entry.get("tests", [])) if isinstance(entry, dict) else []


def resolve(name_or_path: str, table: dict | None = None, install: bool = True) -> Kernel:
    """A table name, or an existing file taken as a bzImage; anything else is an error naming the choices."""
    table = load_table() if table is None else table
    if name_or_path in table:
        entry = table[name_or_path]
        if entry["kind"] == "build":
            return _resolve_build(name_or_path, entry, install)
        return _resolve_debian(name_or_path, entry, install)
    path = Path(name_or_path)
    if path.is_file():
        return Kernel(name=path.name, image=path.resolve())
    raise KernelError(
        f"unknown kernel {name_or_path!r}: not a name in {TABLE_PATH.name} ({', '.join(sorted(table))}) "
        "and not a path to a bzImage")


def version_key(text: str) -> list:
    """Natural order: 6.12.9 < 6.12.117."""
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def _resolve_build(name: str, entry: dict, build: bool) -> Kernel:
    """A kernel we build: the cached image for the current source+patches+config, built first if needed."""
    from agentcg.harness import kbuild
    try:
        spec = kbuild.BuildSpec.from_entry(name, entry, REPO_ROOT)
        image = kbuild.cached_image(spec)
        if image is None:
            if not build:
                raise KernelError(f"kernel {name} is not built yet: make kernel KERNEL={name}")
            image = kbuild.build(spec)
    except kbuild.BuildError as e:
        raise KernelError(str(e))
    return Kernel(name=name, image=image, release=f"{name} ({image.parent.name})",
                  features=frozenset(entry.get("features", [])), slowness=float(entry.get("slowness", 1)))


def _resolve_debian(name: str, entry: dict, install: bool) -> Kernel:
    pattern = re.compile(entry["package"])
    packages = sorted((p for p in installed_packages() if pattern.search(p)), key=version_key)
    if not packages:
        if not install:
            raise KernelError(f"kernel {name}: no installed package matches {entry['package']}")
        package = newest_available(pattern)
        apt_install(package)
        packages = [package]
    release = debian_release(packages[-1])
    headers = f"linux-headers-{release}"
    if install and headers not in installed_packages(pattern=headers):
        apt_install(headers)  # BCC (the exec tracer) compiles against the running kernel's headers
    image = Path("/boot") / f"vmlinuz-{release}"
    if not image.is_file():
        raise KernelError(f"kernel {name}: package {packages[-1]} is installed but {image} is missing")
    return Kernel(name=name, image=image, release=release, features=frozenset(entry.get("features", [])),
                  slowness=float(entry.get("slowness", 1)))


def debian_release(package: str) -> str:
    """linux-image-6.12.117+deb12-amd64-unsigned -> 6.12.117+deb12-amd64"""
    m = re.fullmatch(r"linux-image-(.+?)(-unsigned)?", package)
    if not m:
        raise KernelError(f"{package!r} is not a linux-image package name")
    return m.group(1)


def installed_packages(pattern: str = "linux-image-*") -> list[str]:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n", pattern],
                             capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [line.split()[0] for line in out.splitlines() if line.endswith(" installed")]


def newest_available(pattern: re.Pattern) -> str:
    def search() -> list[str]:
        out = subprocess.run(["apt-cache", "pkgnames", "linux-image-"], capture_output=True, text=True).stdout
        return sorted((p for p in out.split() if pattern.search(p)), key=version_key)
    try:
        found = search()
        if not found:
            apt.update()
            found = search()
    except FileNotFoundError:
        raise KernelError("apt is not available: install a kernel image by hand and pass its path")
    except apt.AptError as e:
        raise KernelError(str(e))
    if not found:
        raise KernelError(f"no Debian package matches {pattern.pattern} (after apt-get update)")
    return found[-1]


def apt_install(package: str) -> None:
    try:
        apt.install([package])
    except apt.AptError as e:
        raise KernelError(str(e))
