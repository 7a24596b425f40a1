"""The daemon's local servers (metrics, tool calls): one request at a time from a thread, and stopped one way.

A Unix socket is bound with the mode given (a stale one left by a daemon that was killed is replaced; one
another daemon still serves is not) under a
umask that never lets it exist with a wider mode; a path or port that cannot be bound is one OSError."""
from __future__ import annotations

import errno
import os
import socket
import socketserver
import threading
from pathlib import Path


class UnixServer(socketserver.UnixStreamServer):
    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)  # http.server wants a (host, port) client address

    def handle_error(self, request, client_address):  # one odd request is that request's problem
        pass


def bind_unix(path: Path, handler, mode: int) -> UnixServer:
    path = Path(path)
    if path.is_socket():
        with socket.socket(socket.AF_UNIX) as probe:
            if probe.connect_ex(str(path)) == 0:
                raise OSError(errno.EADDRINUSE, "another daemon is serving on it")
        path.unlink()
    old = os.umask(0o177)
    try:
        server = UnixServer(str(path), handler)
    finally:
        os.umask(old)
    os.chmod(path, mode)
    return server


def start(server, name: str):
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server


def stop(server) -> None:
    server.shutdown()
    server.server_close()
    address = server.server_address
    if isinstance(address, str) and Path(address).is_socket():
        Path(address).unlink()
