"""How every agentcg command fails: one `agentcg: error:` line on stderr and exit status 2, never a traceback."""
from __future__ import annotations

import sys
from typing import NoReturn

import click


def fail(message: str) -> NoReturn:
    click.echo(f"agentcg: error: {message}", err=True)
    sys.exit(2)
