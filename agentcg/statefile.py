"""Root's state files (call metadata, the daemon's status): written whole, privately, through no path another
process can take or plant.

A fixed temporary name (`<name>.tmp`) is shared by every writer of the file and followed if someone put a link
there; a unique temporary file made with O_EXCL (mkstemp: O_CREAT | O_EXCL, so never an existing path or link)
in the same directory, then renamed over the target (rename replaces a link, never follows it), is neither.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """`path` holds `text` (and only ever all of it, or what it held before), with `mode`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
