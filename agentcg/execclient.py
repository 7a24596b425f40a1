"""The client side of agentcg.execsock: `agentcg exec` for a caller that is not root. Standard library only, so it
starts fast on every command an agent runs and runs under any Python the agent's user can execute:

    python3 -m agentcg.execclient --workload W [--class C] [--socket PATH] -- CMD [ARG...]

The caller forks: the child asks the daemon to be moved into a new call of W, then execs CMD as the caller; the
caller stays in the agent's leaf, waits for it, and asks the daemon to end the call (and for a kill reason).
Exits with CMD's status, 137 with "agentcg: tool call killed by agentcg: <reason>" when agentcg killed it, and
2 with one "agentcg: error:" line when the call could not be made.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import sys
from pathlib import Path

DEFAULT_SOCKET = Path("/run/agentcg.sock")
KILLED_EXIT = 137


class ExecSocketError(Exception):
    pass


def request(path: Path, message: dict, timeout: float = 30.0) -> dict:
    """One request to the daemon (the client side); ExecSocketError when it cannot be asked."""
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall((json.dumps(message) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        raise ExecSocketError(f"cannot reach the agentcg daemon at {path}: {e.strerror or e} (is it running?)") \
            from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise ExecSocketError(f"the agentcg daemon at {path} gave no answer") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        raise ExecSocketError(str(answer.get("error") if isinstance(answer, dict) else answer))
    return answer


def run(path: Path, workload: str, cls: str | None, cmd: list[str]) -> int:
    """CMD as one tool call of `workload`, through the daemon at `path`; its exit status (see the module)."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:  # the tool call
        os.close(r)
        try:
            answer = request(path, {"op": "start", "workload": workload, "command": shlex.join(cmd), "class": cls})
        except ExecSocketError as e:
            answer = {"ok": False, "error": str(e)}
        os.write(w, json.dumps(answer).encode())
        os.close(w)
        if not answer.get("ok"):
            os._exit(126)
        try:
            os.execvp(cmd[0], cmd)
        except OSError as e:
            os.write(2, f"agentcg: error: cannot run {cmd[0]}: {e.strerror}\n".encode())
            os._exit(127)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    _, status = os.waitpid(child, 0)
    rc = os.waitstatus_to_exitcode(status)
    try:
        answer = json.loads(said)
    except ValueError:
        answer = {"ok": False, "error": "the tool call could not be started"}
    if not answer.get("ok"):
        return _error(answer.get("error", "the tool call could not be started"))
    try:
        final = request(path, {"op": "finish", "workload": workload, "call": answer["call"]})
    except ExecSocketError as e:
        return _error(f"ending tool call {answer['call']}: {e}")
    if final.get("killed_reason"):
        print(f"agentcg: tool call killed by agentcg: {final['killed_reason']}", file=sys.stderr)
        return KILLED_EXIT
    return rc if rc >= 0 else 128 - rc


def _error(message: str) -> int:
    print(f"agentcg: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="agentcg.execclient")
    ap.add_argument("--workload", required=True)
    ap.add_argument("--class", dest="cls", default=None)
    ap.add_argument("--socket", default=os.environ.get("AGENTCG_SOCKET") or str(DEFAULT_SOCKET))
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        return _error("no command given")
    return run(Path(args.socket), args.workload, args.cls, cmd)


if __name__ == "__main__":
    sys.exit(main())
