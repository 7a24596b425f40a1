"""cgroup v2 helpers: create, configure, read counters, run processes inside, wait on events, tear down.

Waits are bounded and event-driven where the kernel notifies (cgroup.events, memory.events, PSI triggers):
kernfs wakes poll() with POLLPRI when such a file changes, so tests never sleep for a guessed time.
"""
from __future__ import annotations

import errno
import os
import select
import signal
import struct
import subprocess
import time
from pathlib import Path
from typing import Callable

ROOT = Path("/sys/fs/cgroup")
# Files whose changes the kernel announces through kernfs_notify (poll wakes up with POLLPRI).
NOTIFYING = ("cgroup.events", "memory.events", "memory.events.local", "memory.swap.events", "pids.events")


class CgroupError(Exception):
    pass


def cgroup_id(path: str | Path) -> int:
    """A cgroup's id (what bpf_get_current_cgroup_id() and BPF maps keyed by cgroup hold) is its kernfs node id:
    the inode number of its directory in cgroup2."""
    return os.stat(path).st_ino


def values_close(a: float, b: float, err_pct: float) -> bool:
    """As the kernel selftests: |a-b| within err_pct percent of a+b (charges move in 64-page batches)."""
    return abs(a - b) <= (a + b) / 100 * err_pct


class FileCache:
    """Files read over and over (a controller's 20 Hz ticks), kept open and re-read from offset 0 with pread:
    cgroup and /proc files regenerate their content on every read from the start. Under TCG an open() costs about
    a millisecond, and a tick reads a few files per workload and tool call. A file whose cgroup was removed
    reads as FileNotFoundError (ENODEV from the kernel), and its descriptor is dropped."""

    def __init__(self):
        self._fds: dict[str, int] = {}

    def read(self, path: Path | str) -> str:
        key = str(path)
        fd = self._fds.get(key)
        if fd is None:
            fd = self._fds[key] = os.open(key, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, 4096, 0)  # one page holds all but the longest (memory.stat): no 64 KiB buffer
            return (data if len(data) < 4096 else os.pread(fd, 1 << 16, 0)).decode()
        except OSError as e:
            self._close(key)
            if e.errno in (errno.ENODEV, errno.ENOENT):  # the cgroup was removed after we opened its file
                raise FileNotFoundError(errno.ENOENT, f"{key}: {e.strerror}") from e
            raise

    def forget(self, under: Path | str) -> None:
        """Close the files of a cgroup (and below) that is gone or no longer watched."""
        prefix = str(under).rstrip("/") + "/"
        for key in [k for k in self._fds if k.startswith(prefix)]:
            self._close(key)

    def close(self) -> None:
        for key in list(self._fds):
            self._close(key)

    def _close(self, key: str) -> None:
        fd = self._fds.pop(key, None)
        if fd is not None:
            os.close(fd)


class ChildWatch:
    """Which watched directories had a child made or removed since the last look (inotify: mkdir and rmdir on
    cgroup2 notify like on any file system). The controller lists a directory's child cgroups only then, not 20
    times a second (under TCG a listing of the ~50 interface files costs ~1 ms). Each look: poll(), then
    changed() per directory. A directory that cannot be watched (no inotify, the watch limit) counts as changed
    at every look."""
    _IN_CREATE, _IN_DELETE, _IN_MOVED_FROM, _IN_MOVED_TO = 0x100, 0x200, 0x40, 0x80
    _IN_DELETE_SELF, _IN_IGNORED, _IN_Q_OVERFLOW, _IN_ONLYDIR = 0x400, 0x8000, 0x4000, 0x1000000
    _IN_ISDIR = 0x40000000  # the event is about a directory (a child cgroup, not a file)
    _HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)

    def __init__(self):
        import ctypes
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wds: dict[str, int] = {}  # path -> watch descriptor
        self._paths: dict[int, str] = {}
        self._changed: set[str] = set()

    def changed(self, path: Path | str) -> bool:
        """True the first time a directory is asked about, and whenever a child came or went before the last
        poll() and since its last look (or the watch failed or overflowed)."""
        key = str(path)
        if key not in self._wds:
            wd = self._libc.inotify_add_watch(self._fd, key.encode(), self._IN_CREATE | self._IN_DELETE
                                              | self._IN_MOVED_FROM | self._IN_MOVED_TO | self._IN_DELETE_SELF
                                              | self._IN_ONLYDIR) if self._fd >= 0 else -1
            if wd < 0:
                return True
            self._wds[key], self._paths[wd] = wd, key
            self._changed.discard(key)
            return True
        if key in self._changed:
            self._changed.discard(key)
            return True
        return False

    def forget(self, path: Path | str) -> None:
        wd = self._wds.pop(str(path), None)
        if wd is not None:
            self._paths.pop(wd, None)
            self._libc.inotify_rm_watch(self._fd, wd)  # EINVAL when the directory is gone: its watch went with it

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._wds.clear()
        self._paths.clear()

    def poll(self) -> None:
        """Take in what happened since the last poll (one read when nothing did: once per look, not per
        directory)."""
        while self._fd >= 0:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            at = 0
            while at + self._HEADER.size <= len(data):
                wd, mask, _, size = self._HEADER.unpack_from(data, at)
                at += self._HEADER.size + size
                if mask & self._IN_Q_OVERFLOW:  # events were lost: every directory may have changed
                    self._changed.update(self._wds)
                    continue
                path = self._paths.get(wd)
                if path is None:
                    continue
                if mask & (self._IN_IGNORED | self._IN_DELETE_SELF):  # the directory is gone: watch it anew
                    self._paths.pop(wd, None)
                    self._wds.pop(path, None)
                elif not mask & self._IN_ISDIR:
                    continue
                self._changed.add(path)


def parse_keyed(text: str) -> dict[str, int]:
    """'key value' lines (memory.events, memory.stat, cgroup.events) -> {key: int}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_pressure(text: str) -> dict[str, dict[str, float]]:
    """memory.pressure -> {'some': {'avg10': .., 'total': ..}, 'full': {...}}"""
    out = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        out[kind] = {k: float(v) for k, v in (f.split("=") for f in fields)}
    return out


class Cgroup:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._spawned: list[subprocess.Popen] = []  # reaped by destroy()
        self._children: list[Cgroup] = []

    def __repr__(self) -> str:
        return f"Cgroup({self.path})"

    @property
    def name(self) -> str:
        return self.path.name

    def child(self, name: str) -> "Cgroup":
        """Create a child cgroup (error if it exists)."""
        path = self.path / name
        try:
            path.mkdir()
        except FileExistsError:
            raise CgroupError(f"cgroup {path} already exists")
        child = Cgroup(path)
        self._children.append(child)
        return child

    def enable(self, *controllers: str) -> None:
        self.write("cgroup.subtree_control", " ".join(f"+{c}" for c in controllers))

    def write(self, file: str, value) -> None:
        with open(self.path / file, "w") as f:
            f.write(str(value))

    def read(self, file: str) -> str:
        return (self.path / file).read_text()

    def read_int(self, file: str) -> int:
        text = self.read(file).strip()
        return 2**63 - 1 if text == "max" else int(text)

    def keyed(self, file: str) -> dict[str, int]:
        return parse_keyed(self.read(file))

    def pressure(self, resource: str = "memory") -> dict[str, dict[str, float]]:
        return parse_pressure(self.read(f"{resource}.pressure"))

    def procs(self) -> list[int]:
        return [int(p) for p in self.read("cgroup.procs").split()]

    def populated(self) -> bool:
        return self.keyed("cgroup.events").get("populated", 0) == 1

    def frozen(self) -> bool:
        return self.keyed("cgroup.events").get("frozen", 0) == 1

    def freeze(self, on: bool = True) -> None:
        self.write("cgroup.freeze", 1 if on else 0)

    def kill(self) -> None:
        self.write("cgroup.kill", 1)

    def wait(self, file: str, predicate: Callable[[str], bool], timeout: float) -> str:
        """Return the file's text once predicate(text) holds; TimeoutError after `timeout` seconds."""
        notify = file in NOTIFYING or file.endswith(".pressure")
        deadline = time.monotonic() + timeout
        fd = os.open(self.path / file, os.O_RDONLY)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI | select.POLLERR)
            while True:
                os.lseek(fd, 0, os.SEEK_SET)
                text = os.read(fd, 1 << 16).decode()
                if predicate(text):
                    return text
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.path / file}: condition not met within {timeout} s; last:\n{text}")
                # Notifying files wake us; the cap guards against a missed wake-up. Others are polled.
                slice_s = min(remaining, 1.0 if notify else 0.05)
                if notify:
                    poller.poll(slice_s * 1000)
                else:
                    time.sleep(slice_s)
        finally:
            os.close(fd)

    def wait_key(self, file: str, key: str, predicate: Callable[[int], bool], timeout: float) -> int:
        text = self.wait(file, lambda t: predicate(parse_keyed(t).get(key, 0)), timeout)
        return parse_keyed(text).get(key, 0)

    def wait_populated(self, populated: bool, timeout: float = 10.0) -> None:
        self.wait_key("cgroup.events", "populated", lambda v: v == int(populated), timeout)

    def wait_frozen(self, frozen: bool, timeout: float = 10.0) -> None:
        self.wait_key("cgroup.events", "frozen", lambda v: v == int(frozen), timeout)

    def spawn(self, argv: list[str], oom_score_adj: int | None = None, **popen_kw) -> subprocess.Popen:
        """Start argv with its first instruction already inside this cgroup (and with that oom_score_adj)."""
        procs_file = str(self.path / "cgroup.procs")

        def enter() -> None:
            with open(procs_file, "w") as f:
                f.write("0")
            if oom_score_adj is not None:
                with open("/proc/self/oom_score_adj", "w") as f:
                    f.write(str(oom_score_adj))
        proc = subprocess.Popen(argv, preexec_fn=enter, **popen_kw)
        self._spawned.append(proc)
        return proc

    def child_names(self) -> list[str]:
        """Names of the child cgroups, sorted."""
        return [name for name, _ in self.child_ids()]

    def child_ids(self) -> list[tuple[str, int]]:
        """(name, cgroup id) of the child cgroups, sorted by name. readdir's entry types tell directories from the
        ~50 interface files without a stat each (the controller lists every workload's calls 20 times a second);
        the id (the directory's inode) tells a cgroup from a new one made under the same name."""
        try:
            with os.scandir(self.path) as entries:
                return sorted((e.name, e.inode()) for e in entries if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def descendants(self) -> list["Cgroup"]:
        """All cgroups below this one, deepest first (the order rmdir needs)."""
        dirs = [Path(d) for d, _, _ in os.walk(self.path)][1:]
        return [Cgroup(d) for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True)]

    def destroy(self, timeout: float = 10.0) -> None:
        """Kill everything inside, wait until empty, and remove this cgroup and its descendants."""
        if not self.path.exists():
            return
        if self.frozen():
            self.freeze(False)
        if self.populated():
            self.kill()
            self.wait_populated(False, timeout)
        for proc in self._spawned_here_and_below():
            reap(proc, timeout)
        for cg in self.descendants() + [self]:
            _rmdir_retry(cg.path, timeout)

    def _spawned_here_and_below(self) -> list[subprocess.Popen]:
        procs = list(self._spawned)
        for child in self._children:
            procs += child._spawned_here_and_below()
        return procs


def _rmdir_retry(path: Path, timeout: float) -> None:
    """rmdir can briefly see EBUSY while exiting tasks are released; retry within a bound."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def reap(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """Wait for a child (killing it if it outlives the bound); its return code, -signal for a signal."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        return proc.wait()
