"""agentcg command line."""
from __future__ import annotations

import click


@click.group()
def main():
    """agentcg: resource control for AI coding agents, tested on real kernels."""


# Each command group lives in its module; registered here so that `agentcg --help` lists them all.
from agentcg.cli.control import daemon_cmd, exec_cmd, hook_cmd, status_cmd, workload  # noqa: E402
from agentcg.cli.evaluate import bench, demo, replay  # noqa: E402
from agentcg.cli.harness import kernel_group, probe, report, test_cmd, vmrun, vmtest  # noqa: E402
from agentcg.cli.traces import analyze, record, traces  # noqa: E402

for _command in (vmtest, test_cmd, vmrun, kernel_group, report, probe, demo, analyze, traces, record, replay,
                 workload, exec_cmd, daemon_cmd, status_cmd, hook_cmd, bench):
    main.add_command(_command)
