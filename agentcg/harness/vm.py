"""Boot a kernel under virtme-ng, run one guest command, and bring the result back through a shared directory.

Facts this module is built on (../shared/design/machine.md):
- KVM on this host is a broken nested hypervisor: QEMU errors out or hangs. We probe it once, bounded, and fall
  back to TCG (`--disable-kvm`).
- Without udev coldplug (slow) virtme-ng's init cannot find its virtio-serial script ports; a stub `udevadm`,
  bind-mounted in a private mount namespace, creates only those links: 4-8 s per boot instead of ~15 s.
- Guest stdout and vng's exit status are unreliable here, so the guest writes its exit code into `--rwdir`;
  the host pre-sets it to GUEST_EXIT_UNSET, so a guest that dies is never read as success.
- A guest can panic or hang: a watchdog kills the whole process group when the guest stops making progress.
- Machines of this kind differ in speed: the callers scale the watchdog's bounds by agentcg.harness.slowness, and in slow
  mode (AGENTCG_SLOW) every VM runs in a cgroup limited to that share of a core.
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agentcg.harness import slowness
from agentcg.paths import CACHE_DIR, REPO_ROOT

GUEST_EXIT_UNSET = 255
EXIT_FILE = "exit_code"
PROGRESS_FILE = "progress"
STUB = Path(__file__).resolve().parent / "udevadm-stub"


class VMError(Exception):
    """The VM could not be started at all (missing tools, bad image)."""


@dataclass
class Watchdog:
    boot_timeout: float = 180.0   # from start until the guest first reports progress
    stall_timeout: float = 420.0  # longest time without new progress once the guest is up
    total_timeout: float = 3 * 3600.0

    def scaled(self) -> "Watchdog":
        """These bounds, written for the reference machine, on this one (agentcg.harness.slowness)."""
        f = slowness.factor()
        return Watchdog(self.boot_timeout * f, self.stall_timeout * f, self.total_timeout * f)


@dataclass
class VMOutcome:
    guest_exit: int          # what the guest wrote to rwdir/exit_code; GUEST_EXIT_UNSET if it never did
    vng_returncode: int | None
    killed_reason: str | None  # set when the watchdog had to kill the VM
    console: str
    elapsed: float
    first_progress_s: float | None  # boot -> the guest's first progress report

    @property
    def ok(self) -> bool:
        return self.killed_reason is None and self.guest_exit == 0

    def console_tail(self, lines: int = 60) -> str:
        return "\n".join(self.console.splitlines()[-lines:])


def tool_path(name: str) -> str:
    """Prefer the tool next to our interpreter (the project venv), then PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise VMError(f"{name} not found: run `make setup` (virtme-ng lives in the project venv)")
    return found


TCG_THREAD = os.environ.get("AGENTCG_TCG_THREAD", "single")  # "multi" to trade coherence for speed


LOG_BUF = "16M"


def vng_command(image: Path, guest_cmd: str, rwdir: Path, *, accel: str, cpus: int, memory: str) -> list[str]:
    # A kernel log large enough to keep a whole run (boot included) for the host's scan of it (harness.splat)
    cmd = [tool_path("vng"), "--verbose", "--force-9p", "--cpus", str(cpus), "--memory", memory,
           "-r", str(image), "--rwdir", str(rwdir), "--append", f"log_buf_len={LOG_BUF}"]
    if accel == "tcg":
        # Single-threaded TCG: with one host thread per vCPU (MTTCG) a vCPU can run a stale translation of
        # code the kernel is live-patching (static keys, text_poke_bp), hit the transient int3 after the patch
        # completed and Oops (seen enabling sched_ext and toggling static keys under load). One thread for all
        # vCPUs keeps cross-modifying code coherent; it costs guest throughput, not correctness.
        cmd += ["--disable-kvm", f"--qemu-opts=-accel tcg,thread={TCG_THREAD}"]
    return cmd + ["--", guest_cmd]


def with_udev_stub(cmd: list[str]) -> list[str]:
    """Run cmd in a private mount namespace where udevadm is our stub (root only; otherwise run as is)."""
    udevadm = Path("/usr/bin/udevadm")
    if os.geteuid() != 0 or not udevadm.exists() or not shutil.which("unshare"):
        return cmd
    STUB.chmod(0o755)
    script = f'mount --bind {shlex.quote(str(STUB))} {udevadm} && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"] + cmd


def prepare_rwdir(rwdir: Path) -> None:
    rwdir.mkdir(parents=True, exist_ok=True)
    (rwdir / EXIT_FILE).write_text(f"{GUEST_EXIT_UNSET}\n")
    (rwdir / PROGRESS_FILE).unlink(missing_ok=True)


def read_guest_exit(rwdir: Path) -> int:
    try:
        return int((rwdir / EXIT_FILE).read_text().strip())
    except (OSError, ValueError):
        return GUEST_EXIT_UNSET


def run_guest(image: Path, guest_cmd: str, rwdir: Path, *, accel: str = "auto", cpus: int = 2,
              memory: str = "2G", watchdog: Watchdog | None = None, console_path: Path | None = None) -> VMOutcome:
    """Boot `image`, run `guest_cmd` in the guest, wait under the watchdog, and report what happened."""
    if not Path(image).is_file():
        raise VMError(f"kernel image {image} does not exist")
    watchdog = watchdog or Watchdog()
    accel = probe_accel() if accel == "auto" else accel
    prepare_rwdir(rwdir)
    console_path = console_path or rwdir / "console.log"
    cmd = with_udev_stub(vng_command(Path(image), guest_cmd, rwdir, accel=accel, cpus=cpus, memory=memory))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    with contextlib.ExitStack() as stack:
        try:
            join = stack.enter_context(slowness.cpu_limit(slowness.slow_share(), rwdir.name))
        except slowness.SlownessError as e:
            raise VMError(str(e))
        return _run_watched(cmd, env, console_path, rwdir, watchdog, join)


def guest_command(argv: list[str], rwdir: Path, *, env: dict[str, str] | None = None, capture: bool = False,
                  announce: bool = False) -> str:
    """The one shell line every guest runs: `argv` in this checkout, with the host's slowness factor and `env`;
    its exit status goes to rwdir/exit_code whatever it is. An argv starting with `agentcg` runs this checkout's
    agentcg under the host's interpreter. capture: stdout and stderr into rwdir/stdout and rwdir/stderr (else the
    console). announce: write the progress file first, for commands that report no progress of their own (the
    watchdog's boot bound ends there)."""
    q = shlex.quote
    argv = [sys.executable, "-m", "agentcg", *argv[1:]] if argv and argv[0] == "agentcg" else list(argv)
    assigns = " ".join(f"{k}={q(v)}" for k, v in {**slowness.guest_env(), **(env or {})}.items())
    line = f"cd {q(str(REPO_ROOT))} && {assigns} {shlex.join(argv)}"
    if capture:
        line += f" > {q(str(rwdir / 'stdout'))} 2> {q(str(rwdir / 'stderr'))}"
    line += f"; echo $? > {q(str(rwdir / EXIT_FILE))}"
    return (f"echo running > {q(str(rwdir / PROGRESS_FILE))}; " if announce else "") + line


def run_argv(image: Path, argv: list[str], rwdir: Path, *, env: dict[str, str] | None = None, capture: bool = False,
             announce: bool = False, **boot) -> VMOutcome:
    """Boot `image` and run `argv` in it (guest_command); `boot` as run_guest's (accel, cpus, memory, watchdog)."""
    return run_guest(image, guest_command(argv, rwdir, env=env, capture=capture, announce=announce), rwdir, **boot)


def _run_watched(cmd: list[str], env: dict, console_path: Path, rwdir: Path, watchdog: Watchdog,
                 join) -> VMOutcome:
    start = time.monotonic()
    with open(console_path, "wb") as console:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True, preexec_fn=join)
        # The VM has its own session (the watchdog kills it as a group), so neither a terminal's Ctrl-C nor a
        # SIGTERM to us reaches it: take it down with us.
        with terminate_as_interrupt():
            try:
                killed_reason, first_progress = _watch(proc, rwdir, watchdog, start)
            except BaseException:
                _kill_group(proc)
                raise
    elapsed = time.monotonic() - start
    text = console_path.read_text(errors="replace")
    return VMOutcome(guest_exit=read_guest_exit(rwdir), vng_returncode=proc.returncode,
                     killed_reason=killed_reason, console=text, elapsed=elapsed, first_progress_s=first_progress)


def _watch(proc: subprocess.Popen, rwdir: Path, wd: Watchdog, start: float) -> tuple[str | None, float | None]:
    """Poll until the VM exits; kill its process group if it stops making progress."""
    progress = rwdir / PROGRESS_FILE
    last_seen, last_change, first = None, None, None
    while proc.poll() is None:
        now = time.monotonic()
        try:
            content = progress.read_text()
        except OSError:
            content = None
        if content is not None and content != last_seen:
            last_seen, last_change = content, now
            first = first if first is not None else now - start
        reason = None
        if last_change is None and now - start > wd.boot_timeout:
            reason = f"guest did not start its tests within {wd.boot_timeout:.0f} s (boot hang or panic?)"
        elif last_change is not None and now - last_change > wd.stall_timeout:
            reason = f"guest made no progress for {wd.stall_timeout:.0f} s (hang during: {last_seen.strip()})"
        elif now - start > wd.total_timeout:
            reason = f"VM exceeded its total time of {wd.total_timeout:.0f} s"
        if reason:
            _kill_group(proc)
            return reason, first
        time.sleep(0.25)
    return None, first


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM raises KeyboardInterrupt for the duration (main thread only; elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def probe_accel(image: Path | None = None, timeout: float = 30.0) -> str:
    """'kvm' if a trivial KVM boot really completes, else 'tcg'. Bounded, cached per host, AGENTCG_ACCEL overrides."""
    forced = os.environ.get("AGENTCG_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    key = f"{os.uname().release} {shutil.which('qemu-system-x86_64')}"
    cache = CACHE_DIR / "accel-probe.json"
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return cached["accel"]
    except (OSError, ValueError):
        pass
    image = image or _any_boot_image()
    if image is None:
        return "tcg"
    rwdir = CACHE_DIR / "accel-probe"
    outcome = run_guest(image, f"echo 0 > {shlex.quote(str(rwdir / EXIT_FILE))}", rwdir, accel="kvm", cpus=1,
                        memory="512M", watchdog=Watchdog(boot_timeout=timeout, total_timeout=timeout))
    accel = "kvm" if outcome.guest_exit == 0 else "tcg"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"key": key, "accel": accel, "probe_s": round(outcome.elapsed, 1)}))
    return accel


def _any_boot_image() -> Path | None:
    images = sorted(Path("/boot").glob("vmlinuz-*"))
    return images[-1] if images else None
