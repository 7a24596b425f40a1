"""A stop request that a signal handler can make safely.

threading.Event.set() takes the event's lock. A Python signal handler runs in the main thread between two
bytecodes of whatever it interrupted; if that was the main thread's own Event.wait() while it held the lock,
the handler waits for a lock its own thread holds, forever: a SIGTERM that hangs the process it should stop
(seen: `agentcg record` not ending within 20 s of a SIGTERM). `Stop` takes no lock: set() raises a flag and
writes a byte into a pipe, and wait() selects on the pipe, so it wakes at once, from a handler or another thread.
"""
from __future__ import annotations

import os
import select


class Stop:
    def __init__(self):
        self._set = False
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)

    def set(self) -> None:
        self._set = True
        try:
            os.write(self._w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe already holds a byte (or is closed): the flag is what counts

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False after `timeout` seconds (None: no limit) without it."""
        if not self._set:
            select.select([self._r], [], [], timeout)
        return self._set

    def fileno(self) -> int:
        """Readable once set: select on it together with other files."""
        return self._r

    def __del__(self):
        for fd in (getattr(self, "_r", None), getattr(self, "_w", None)):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
