"""A stop request from a signal handler: it wakes the waiter at once and can never deadlock it."""
import subprocess
import sys
import threading
import time
from pathlib import Path

from agentcg.stopping import Stop

REPO = Path(__file__).resolve().parent.parent


def test_wait_times_out_and_wakes_on_set_from_another_thread():
    stop = Stop()
    started = time.monotonic()
    assert stop.wait(0.05) is False and time.monotonic() - started >= 0.05
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    assert stop.wait(10) is True and time.monotonic() - started < 2
    assert stop.is_set() and stop.wait(0) is True


LOOP = """
import signal, sys
from agentcg.stopping import Stop
stop = Stop()
signal.signal(signal.SIGALRM, lambda *_: stop.set())
for _ in range(5000):
    stop = Stop()
    signal.setitimer(signal.ITIMER_REAL, 0.0003)
    while not stop.wait(0.0001):
        pass
print("done")
"""


def test_a_signal_handler_that_sets_it_never_deadlocks_the_main_threads_wait():
    """Five thousand signals at random moments of waits. With threading.Event in Stop's place this hangs within
    5000 rounds every time it was tried (the handler takes the lock the interrupted wait holds); the subprocess
    bounds the hang."""
    proc = subprocess.run([sys.executable, "-c", LOOP], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
