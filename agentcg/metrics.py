"""The daemon's Prometheus metrics (prometheus_client does the exposition format and the escaping of label values,
which come from names an agent may choose).

Served from the last snapshot the controller published (`Snapshot`, once a second from its own thread), so a
scrape reads no cgroup and never races a tick: its work is bounded by the size of that snapshot. One request at
a time, each with a 5 s budget, so a local process cannot pile up threads. By default on a root-only Unix socket
in the state directory (`curl --unix-socket /run/agentcg/metrics.sock http://x/metrics`); on TCP only when the
operator opts in, since any local process (tool calls included) can reach a TCP port and read every tenant's
workloads, calls and usage. A port or path that cannot be bound is one MetricsError, before the daemon starts.

    agentcg_ticks_total, agentcg_decisions_total                          counters
    agentcg_workload_memory_bytes{workload}                              gauge
    agentcg_call_memory_bytes{workload,call,class,stage}                 gauge
    agentcg_call_budget_bytes{workload,call,class,stage}                 gauge (calls with a budget)
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from agentcg import sockets

CALL_LABELS = ["workload", "call", "class", "stage"]


class StatusCollector:
    """A collector over a status() function (agentcg.controller.Controller.status's shape)."""

    def __init__(self, status: Callable[[], dict]):
        self.status = status

    def collect(self):
        s = self.status()
        yield CounterMetricFamily("agentcg_ticks", "controller ticks", value=s["ticks"])
        yield CounterMetricFamily("agentcg_decisions", "decisions the ladder took", value=s["decisions"])
        workload = GaugeMetricFamily("agentcg_workload_memory_bytes", "memory.current of the workload",
                                     labels=["workload"])
        usage = GaugeMetricFamily("agentcg_call_memory_bytes", "memory.current of the tool call", labels=CALL_LABELS)
        budget = GaugeMetricFamily("agentcg_call_budget_bytes", "the tool call's budget", labels=CALL_LABELS)
        for wname, w in s["workloads"].items():
            workload.add_metric([wname], w["usage"])
            for call, c in w["calls"].items():
                labels = [wname, call, str(c["cls"]), str(c["stage"])]
                usage.add_metric(labels, c["usage"])
                if c["budget"]:
                    budget.add_metric(labels, c["budget"])
        yield from (workload, usage, budget)


def registry(status: Callable[[], dict]) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StatusCollector(status))
    return reg


def text(status: Callable[[], dict]) -> str:
    """The exposition text of one scrape."""
    return generate_latest(registry(status)).decode()


class MetricsError(Exception):
    """The metrics endpoint cannot be served (port taken, path unusable)."""


class Snapshot:
    """The status the controller last published; what every scrape reads."""

    def __init__(self, status: dict | None = None):
        self._lock = threading.Lock()
        self._status = status or {"ticks": 0, "decisions": 0, "workloads": {}}

    def publish(self, status: dict) -> None:
        with self._lock:
            self._status = status

    def get(self) -> dict:
        with self._lock:
            return self._status


class _Handler(BaseHTTPRequestHandler):
    timeout = 5  # seconds a client may take to send its request

    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        body = text(self.server.status).encode()
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # scrapes are not events
        pass


class _TCPServer(HTTPServer):
    allow_reuse_address = True


def serve(status: Callable[[], dict], port: int | None = None, addr: str = "127.0.0.1",
          socket_path: Path | None = None):
    """Serve /metrics from a thread, on a root-only Unix socket (socket_path) or on addr:port; the server (call
    .shutdown() to stop, .server_close() to release it)."""
    try:
        server = sockets.bind_unix(socket_path, _Handler, 0o600) if socket_path is not None \
            else _TCPServer((addr, port), _Handler)
    except OSError as e:
        where = socket_path or f"{addr}:{port}"
        raise MetricsError(f"cannot serve metrics on {where}: {e.strerror or e}") from None
    server.status = status
    return sockets.start(server, "agentcg-metrics")


stop = sockets.stop
