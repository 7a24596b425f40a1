"""Allocate and touch anonymous memory: the smallest workload that makes a cgroup feel memory pressure.

python -m agentcg.harness.memhog SIZE_KIB_OR_MIB [--kib] [--hold] [--chunk-mib N] [--go-on-stdin]
Writes every byte (so every page is really charged), prints one line per chunk when --verbose, and with --hold
keeps the memory until killed. Exits 0 once all memory is touched (without --hold).

--go-on-stdin prints "armed" once the interpreter is up and waits for a line on stdin before allocating; it
then prints "touched <seconds>": the time of the allocation alone, without the interpreter's own start-up
charges (tests that delay charges need to tell the two apart).
"""
from __future__ import annotations

import argparse
import mmap
import signal
import subprocess
import sys
import time

MIB = 1 << 20


def own_cgroup_usage_file() -> str:
    rel = open("/proc/self/cgroup").read().strip().split("::", 1)[1]
    return f"/sys/fs/cgroup{rel}/memory.current"


def touch(size_bytes: int, chunk_bytes: int = MIB, verbose: bool = False, mark_usage: int = 0) -> mmap.mmap:
    """Write every byte; with mark_usage, print "mark <CLOCK_MONOTONIC>" as soon as this process's cgroup
    charges more than mark_usage bytes (the moment a controller watching that cgroup could first see it)."""
    area = mmap.mmap(-1, size_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    pattern = b"\x5a" * chunk_bytes
    usage_file = own_cgroup_usage_file() if mark_usage else None
    done = 0
    while done < size_bytes:
        step = min(chunk_bytes, size_bytes - done)
        area.write(pattern[:step])
        done += step
        if usage_file and int(open(usage_file).read()) > mark_usage:
            print(f"mark {time.monotonic():.6f}", flush=True)
            usage_file = None
        if verbose:
            print(done // MIB, flush=True)
    return area



def touch_timed(cg, kib: int, before_go=None, counters_of=None) -> tuple[float, dict]:
    """Allocate `kib` KiB in cg after the interpreter is up; (seconds of the allocation, counter deltas)."""
    from agentcg.cgroup import reap  # here: `python -m agentcg.harness.memhog` stays one light module
    proc = cg.spawn([sys.executable, "-m", "agentcg.harness.memhog", str(kib), "--kib", "--go-on-stdin"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "armed"
    if before_go:
        before_go()
    if counters_of:  # an attachment of bpf/tests/memcg_test.bpf.c: its counters' deltas over the allocation
        from agentcg.harness.bpfmaps import counters, counters_since
    c0 = counters(counters_of) if counters_of else {}
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline().split()
    delta = counters_since(counters_of, c0) if counters_of else {}
    proc.stdin.close()
    assert reap(proc, timeout=120) == 0
    assert line and line[0] == "touched", line
    return float(line[1]), delta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="agentcg.harness.memhog")
    ap.add_argument("size", type=int, help="MiB (KiB with --kib)")
    ap.add_argument("--kib", action="store_true")
    ap.add_argument("--chunk-mib", type=int, default=1)
    ap.add_argument("--hold", action="store_true", help="keep the memory until killed")
    ap.add_argument("--go-on-stdin", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--mark-usage-mib", type=int, default=0,
                    help="print 'mark <monotonic time>' when the own cgroup's memory.current passes this")
    args = ap.parse_args(argv)
    if args.go_on_stdin:
        print("armed", flush=True)
        sys.stdin.readline()
    start = time.monotonic()
    area = touch(args.size * (1024 if args.kib else MIB), args.chunk_mib * MIB, args.verbose, args.mark_usage_mib * MIB)
    if args.go_on_stdin:
        print(f"touched {time.monotonic() - start:.6f}", flush=True)
    print("ready", flush=True)
    if args.hold:
        signal.pause()
    area.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
