"""`agentcg test` (what `make test` runs): the host tests and each kernel's in-guest tests, in parallel.

A guest under TCG runs on one host core, and a kernel build takes every core it is given, so the whole suite is a
small scheduling problem: jobs take slots (a VM or the host tests one, the kernel build one per core), at most
`capacity` slots are taken at once (default: cores + 1, since a VM also waits on 9p and on its own sleeps), a
kernel we build is built before its VMs start, and the build goes first because it is the longest path.
What each kernel runs is vmtests/suites.yaml: only what that kernel adds, split into shards of one VM each.

Every job writes its whole output to results/logs/<job>.log; this prints one line when a job starts and one when
it ends (pytest's own summary), a heartbeat while jobs run, the tail of every failed job's log, and a table.
With more slots taken than there are cores, each VM gets a share of a core: the slowness factor handed to the
jobs (agentcg.harness.slowness) grows by that over-subscription, so their time-outs do too.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agentcg.harness import kernels, slowness, vm
from agentcg.paths import REPO_ROOT

SUITES = REPO_ROOT / "vmtests" / "suites.yaml"
LOGS = REPO_ROOT / "results" / "logs"
HEARTBEAT_S = 120.0
NOT_IN_DEFAULT_RUN = "not evaluation"  # long comparisons between policies: `agentcg bench`
OUR_KERNEL, HOST_AFTER_BUILD = "agentcg-6.12", "agentcg_kernel"  # host tests that boot our kernel: after its build


class SuiteError(Exception):
    pass


@dataclass
class Job:
    name: str
    argv: list[str]
    slots: int = 1
    after: str | None = None  # a job that must succeed first
    proc: subprocess.Popen | None = None
    started: float | None = None
    ended: float | None = None
    returncode: int | None = None
    skipped_because: str | None = None
    counts: dict = field(default_factory=dict)
    summary: str = ""

    @property
    def log(self) -> Path:
        return LOGS / f"{self.name.replace('/', '-').replace(' ', '-')}.log"

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def elapsed(self, now: float | None = None) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or now or time.monotonic()) - self.started


def load_suites(path: Path = SUITES) -> dict[str, list[list[str]]]:
    """{kernel: [shard args, ...]} from suites.yaml, checked."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SuiteError(f"cannot read {path}: {e}")
    if not isinstance(data, dict) or not data:
        raise SuiteError(f"{path}: expected a mapping of kernel names")
    suites = {}
    for kernel, entry in data.items():
        shards = entry.get("shards") if isinstance(entry, dict) else None
        if not isinstance(shards, list) or not shards or not all(
                isinstance(s, list) and s and all(isinstance(a, str) for a in s) for s in shards):
            raise SuiteError(f"{path}: {kernel}: `shards` must be a non-empty list of lists of pytest arguments")
        suites[str(kernel)] = shards
    return suites


def plan(kernel_names: list[str], suites: dict[str, list[list[str]]], host: bool = True,
         python: str = sys.executable) -> list[Job]:
    """The jobs, in the order they should start: builds first (the longest path), then host tests, then VMs."""
    jobs: list[Job] = []
    cores = os.cpu_count() or 1
    for name in kernel_names:
        if name not in suites:
            raise SuiteError(f"kernel {name} has no entry in {SUITES.name}")
        if kernels.load_table().get(name, {}).get("kind") == "build":
            jobs.append(Job(f"build {name}", [python, "-m", "agentcg", "kernel", "build", name], slots=cores))
    if host:
        # host tests that boot our kernel (marker agentcg_kernel) wait for its build, in a job of their own
        ours = f"build {OUR_KERNEL}" if any(j.name == f"build {OUR_KERNEL}" for j in jobs) else None
        jobs.append(Job("host", [python, "-m", "pytest", str(REPO_ROOT / "tests"), "-q", "-rs", "-m",
                                 f"not {HOST_AFTER_BUILD}",
                                 f"--junitxml={REPO_ROOT / 'results' / 'host' / 'junit.xml'}"]))
        if ours:
            jobs.append(Job(f"host/{OUR_KERNEL}", [python, "-m", "pytest", str(REPO_ROOT / "tests"), "-q", "-rs",
                                                   "-m", HOST_AFTER_BUILD, f"--junitxml={REPO_ROOT / 'results' / 'host' / f'junit-{OUR_KERNEL}.xml'}"],
                            after=ours))
    for name in kernel_names:
        shards = suites[name]
        built = f"build {name}" if any(j.name == f"build {name}" for j in jobs) else None
        for i, args in enumerate(shards, 1):
            label = name if len(shards) == 1 else f"{name}/{i}"
            out = REPO_ROOT / "results" / (kernels.slug(name) + ("" if len(shards) == 1 else f"-{i}"))
            jobs.append(Job(label, [python, "-m", "agentcg", "vmtest", "--kernel", name, "--out", str(out),
                                    "-m", NOT_IN_DEFAULT_RUN, *args], after=built))
    return jobs


_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def pytest_counts(text: str) -> tuple[dict, str]:
    """The counts and the closing line of a pytest run's output."""
    for line in reversed(text.splitlines()):
        if re.search(r" in [\d.]+s", line) and _COUNT.search(line):
            counts = {}
            for n, what in _COUNT.findall(line):
                counts["error" if what.startswith("error") else what] = int(n)
            return counts, line.strip("= ").strip()
    return {}, ""


def _fmt(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class Runner:
    def __init__(self, jobs: list[Job], capacity: int, echo=print):
        self.jobs, self.capacity, self.echo = jobs, capacity, echo
        self.cores = os.cpu_count() or 1

    def env(self) -> dict:
        # more slots than cores: every job gets a share of a core, and its time-outs grow by as much
        over = max(1.0, min(self.capacity, sum(j.slots for j in self.jobs)) / self.cores)
        return dict(os.environ, **{slowness.ENV_FACTOR: str(round(slowness.factor() * over, 2))})

    def _startable(self, job: Job, used: int) -> bool:
        if job.started is not None or job.skipped_because:
            return False
        if job.after:
            dep = next(j for j in self.jobs if j.name == job.after)
            if dep.returncode is None:
                return False
            if not dep.ok:
                job.skipped_because = f"{dep.name} failed"
                self.echo(f"agentcg test: {job.name}: not run ({job.skipped_because})")
                return False
        return used + min(job.slots, self.capacity) <= self.capacity

    def run(self) -> bool:
        LOGS.mkdir(parents=True, exist_ok=True)
        env = self.env()
        self.echo(f"agentcg test: {len(self.jobs)} jobs on {self.cores} cores, {self.capacity} slots at once, "
                  f"slowness {env[slowness.ENV_FACTOR]}; logs in {LOGS}")
        t0 = last_beat = time.monotonic()
        try:
            with vm.terminate_as_interrupt():  # a SIGTERM (CI's time limit) must not leave VMs and builds behind
                self._loop(env, t0, last_beat)
        except BaseException:
            self._stop_all()
            raise
        self._report(time.monotonic() - t0)
        return all(j.ok for j in self.jobs)

    def _loop(self, env: dict, t0: float, last_beat: float) -> None:
        while any(j.returncode is None and not j.skipped_because for j in self.jobs):
            used = sum(j.slots for j in self.jobs if j.proc is not None and j.returncode is None)
            for job in self.jobs:
                if self._startable(job, used):
                    self._start(job, env)
                    used += job.slots
            for job in self.jobs:
                if job.proc is not None and job.returncode is None and job.proc.poll() is not None:
                    self._finish(job)
            now = time.monotonic()
            if now - last_beat >= HEARTBEAT_S:
                running = [f"{j.name} {_fmt(j.elapsed(now))}" for j in self.jobs
                           if j.proc is not None and j.returncode is None]
                self.echo(f"agentcg test: {_fmt(now - t0)} elapsed; running: {', '.join(running) or '-'}")
                last_beat = now
            time.sleep(0.5)

    def _stop_all(self) -> None:
        """Each job has its own process group (a build's make, a VM's QEMU): end the groups, then make sure."""
        live = [j for j in self.jobs if j.proc is not None and j.proc.poll() is None]
        for job in live:
            try:
                os.killpg(job.proc.pid, signal.SIGTERM)  # pytest takes its VM down on SIGTERM
            except ProcessLookupError:
                pass
        for job in live:
            try:
                job.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(job.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _start(self, job: Job, env: dict) -> None:
        job.started = time.monotonic()
        with open(job.log, "wb") as log:
            job.proc = subprocess.Popen(job.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, cwd=REPO_ROOT, start_new_session=True)
        self.echo(f"agentcg test: {job.name}: started ({' '.join(job.argv[2:])[:150]})")

    def _finish(self, job: Job) -> None:
        job.returncode = job.proc.returncode
        job.ended = time.monotonic()
        text = job.log.read_text(errors="replace")
        job.counts, job.summary = pytest_counts(text)
        if not job.summary:
            lines = [ln for ln in text.splitlines() if ln.strip()]
            job.summary = lines[-1].strip() if lines else "no output"
        verdict = "ok" if job.ok else f"FAILED (exit {job.returncode})"
        self.echo(f"agentcg test: {job.name}: {verdict} in {_fmt(job.elapsed())}: {job.summary}")

    def _report(self, wall: float) -> None:
        for job in self.jobs:
            if job.returncode not in (None, 0):
                tail = job.log.read_text(errors="replace").splitlines()[-60:]
                self.echo(f"---- {job.name}: last lines of {job.log}")
                for line in tail:
                    self.echo(f"  {line}")
        self.echo(f"{'job':<22} {'result':<8} {'time':>8}  counts")
        totals: dict[str, int] = {}
        for job in self.jobs:
            result = "not run" if job.skipped_because else ("ok" if job.ok else "FAILED")
            counts = ", ".join(f"{n} {k}" for k, n in job.counts.items())
            self.echo(f"{job.name:<22} {result:<8} {_fmt(job.elapsed()):>8}  {counts or job.skipped_because or ''}")
            for k, n in job.counts.items():
                totals[k] = totals.get(k, 0) + n
        # a job that failed without a failed test of its own (a build, a VM that died) counts as one failure
        failed = totals.get("failed", 0) + totals.get("error", 0) + sum(
            1 for j in self.jobs if j.returncode not in (None, 0)
            and not j.counts.get("failed") and not j.counts.get("error"))
        self.echo(f"agentcg test: wall time {_fmt(wall)}")
        flaky = f", {totals['xfailed']} known flaky failures (vmtests/flaky.yaml)" if totals.get("xfailed") else ""
        self.echo(f"total: {totals.get('passed', 0)} passed, {failed} failed, {totals.get('skipped', 0)} skipped{flaky}")


def run(kernel_names: list[str], host: bool = True, capacity: int | None = None) -> bool:
    try:
        jobs = plan(kernel_names, load_suites(), host=host)
    except kernels.KernelError as e:
        raise SuiteError(str(e))
    capacity = capacity or (os.cpu_count() or 1) + 1
    return Runner(jobs, capacity).run()
