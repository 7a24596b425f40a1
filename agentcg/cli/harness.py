"""The test framework's commands: vmtest, test (`make test`), vmrun, kernel, report, probe."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from agentcg.cli.errors import fail
from agentcg.harness import kernels
from agentcg.paths import REPO_ROOT


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--kernel", default="debian-6.12", show_default=True, help="kernel name or bzImage path")
@click.option("--out", default=None, help="results directory (default: results/<kernel>)")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def vmtest(kernel: str, out: str | None, pytest_args: tuple[str, ...]):
    """Boot KERNEL under virtme-ng and run the in-guest test suite (vmtests/, or the kernel's own `tests` in
    kernel/kernels.yaml, or the test files and node ids among PYTEST_ARGS); reports per kernel in results/."""
    try:
        kernels.resolve(kernel)  # fail early and clearly, before pytest starts
    except kernels.KernelError as e:
        fail(str(e))
    out_dir = Path(out).resolve() if out else REPO_ROOT / "results" / kernels.slug(kernel)
    os.chdir(REPO_ROOT)
    named = [a for a in pytest_args if not a.startswith("-") and Path(a.split("::")[0]).exists()]
    default = kernels.default_tests(kernel) or ["vmtests"]
    cmd = [sys.executable, "-m", "pytest", *([] if named else [str(REPO_ROOT / t) for t in default]),
           f"--kernel={kernel}", "-rsx", f"--vm-results={out_dir}/guest", f"--junitxml={out_dir}/junit.xml",
           f"--alluredir={out_dir}/allure", "--clean-alluredir", *pytest_args]
    # exec, not a child: a SIGTERM or Ctrl-C for `agentcg vmtest` must reach pytest, which takes its VM down
    sys.stdout.flush()
    os.execv(sys.executable, cmd)


@click.command("test")
@click.option("--kernel", "kernel_names", multiple=True,
              help="a kernel of vmtests/suites.yaml (repeatable; default: every kernel there)")
@click.option("--no-host", is_flag=True, help="only the in-guest tests")
@click.option("--slots", type=int, default=None, help="jobs' slots taken at once (default: cores + 1)")
def test_cmd(kernel_names: tuple[str, ...], no_host: bool, slots: int | None):
    """The whole suite: host tests and each kernel's in-guest tests, in parallel (what `make test` runs)."""
    from agentcg.harness import slowness, suite
    try:
        names = list(kernel_names) or list(suite.load_suites())
        ok = suite.run(names, host=not no_host, capacity=slots)
    except (suite.SuiteError, slowness.SlownessError) as e:
        fail(str(e))
    except KeyboardInterrupt:
        click.echo("agentcg: error: interrupted; every job was stopped", err=True)
        sys.exit(130)
    sys.exit(0 if ok else 1)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--kernel", default="debian-6.12", show_default=True, help="kernel name or bzImage path")
@click.option("--memory", default="2G", show_default=True)
@click.option("--timeout", type=float, default=1800, show_default=True,
              help="seconds before the VM is killed (on the reference machine: x agentcg.harness.slowness)")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def vmrun(kernel: str, memory: str, timeout: float, cmd: tuple[str, ...]):
    """Boot KERNEL and run CMD as root in the guest (in this checkout); print its output, exit with its status.

    For benchmarks that need real cgroup v2 (e.g. `agentcg vmrun -- agentcg replay --bench ...`).
    """
    from agentcg.harness import vm
    try:
        k = kernels.resolve(kernel)
    except kernels.KernelError as e:
        fail(str(e))
    from agentcg.harness import kbuild
    rwdir = REPO_ROOT / "results" / k.slug / "vmrun"
    try:
        env = {"COLUMNS": "160", **kbuild.bpf_env(k.image)}  # the in-kernel policy and scheduler, where built
    except kbuild.BuildError as e:
        fail(f"building bpf/ for {k.name}: {e}")
    # announced: once the guest is up only --timeout bounds the command
    outcome = vm.run_argv(k.image, list(cmd), rwdir, env=env, capture=True, announce=True, memory=memory,
                          watchdog=vm.Watchdog(boot_timeout=300, stall_timeout=timeout, total_timeout=timeout).scaled())
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        path = rwdir / name
        if path.exists():
            stream.write(path.read_text(errors="replace"))
    if outcome.killed_reason or outcome.guest_exit == vm.GUEST_EXIT_UNSET:
        fail(f"VM did not finish: {outcome.killed_reason or 'no exit code'}; console tail:\n"
              f"{outcome.console_tail(20)}")
    sys.exit(outcome.guest_exit)


@click.group("kernel")
def kernel_group():
    """Named kernels (kernel/kernels.yaml)."""


@kernel_group.command("list")
def kernel_list():
    try:
        table = kernels.load_table()
    except kernels.KernelError as e:
        fail(str(e))
    for name, entry in table.items():
        click.echo(f"{name:16} {entry['kind']:8} features: {', '.join(entry.get('features', []))}")


@kernel_group.command("resolve")
@click.argument("name")
def kernel_resolve(name: str):
    """Print the image a kernel name boots (installing it if needed)."""
    try:
        k = kernels.resolve(name)
    except kernels.KernelError as e:
        fail(str(e))
    click.echo(json.dumps({"name": k.name, "image": str(k.image), "release": k.release,
                           "features": sorted(k.features) if k.features is not None else None}))


@kernel_group.command("build")
@click.argument("name")
@click.option("-j", "--jobs", type=int, default=None, help="parallel make jobs (default: all CPUs)")
def kernel_build(name: str, jobs: int | None):
    """Build (or reuse from the cache) a kernel of kind build; prints the bzImage path."""
    from agentcg.harness import kbuild
    try:
        entry = kernels.load_table().get(name)
        if entry is None or entry["kind"] != "build":
            raise kbuild.BuildError(f"{name!r} is not a kernel of kind build in kernel/kernels.yaml")
        image = kbuild.build(kbuild.BuildSpec.from_entry(name, entry, REPO_ROOT), jobs=jobs,
                             log=lambda m: click.echo(m, err=True))
    except (kernels.KernelError, kbuild.BuildError) as e:
        fail(str(e))
    click.echo(str(image))


@kernel_group.command("key")
@click.argument("name")
def kernel_key(name: str):
    """Print the cache key of a kernel: a hash of its source version, patches and config (or its image)."""
    from agentcg.harness import kbuild
    try:
        entry = kernels.load_table().get(name)
        if entry is None:
            raise kernels.KernelError(f"unknown kernel {name!r}")
        if entry["kind"] == "build":
            click.echo(kbuild.build_key(kbuild.BuildSpec.from_entry(name, entry, REPO_ROOT))[:16])
        else:
            import hashlib  # prebuilt images: the key only follows the table entry
            click.echo(hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:16])
    except (kernels.KernelError, kbuild.BuildError) as e:
        fail(str(e))


@kernel_group.command("clean")
@click.argument("name", required=False)
def kernel_clean(name: str | None):
    """Remove cached kernels and build trees (all, or NAME's)."""
    from agentcg.harness import kbuild
    for path in kbuild.clean(name):
        click.echo(f"removed {path}")


@click.command()
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False), required=False)
@click.option("--markdown", is_flag=True, help="a Markdown table (for CI step summaries)")
@click.option("--compare", nargs=2, type=click.Path(exists=True, file_okay=False), metavar="A B",
              help="what changed from A to B (two kernels' results, or two results/ trees); exit 1 on passed->failed")
def report(results_dir: str | None, markdown: bool, compare: tuple[str, str] | None):
    """Summarise one kernel's vmtest results (RESULTS_DIR/junit.xml and summary.json), or compare two."""
    from agentcg.harness import report as report_mod
    if bool(results_dir) == bool(compare):
        fail("give one RESULTS_DIR, or --compare A B")
    try:
        if compare:
            a, b = (report_mod.outcomes(p) for p in compare)
            diff = report_mod.compare(a, b)
            same = sum(a[n] == b[n] for n in a.keys() & b.keys())
            click.echo(report_mod.render_compare(*compare, diff, same))
            if diff.get("passed->failed"):
                sys.exit(1)
            return
        click.echo(report_mod.render(report_mod.load(results_dir), markdown=markdown))
    except report_mod.ReportError as e:
        fail(str(e))


@click.command()
def probe():
    """Print the features of the running kernel as JSON."""
    from agentcg import features
    click.echo(json.dumps(features.probe(), indent=1))
