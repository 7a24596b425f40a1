"""The daemon's Prometheus metrics, read from the controller's status at each scrape (prometheus_client does the
exposition format and the escaping of label values, which come from names an agent may choose).

    agentcg_ticks_total, agentcg_decisions_total                          counters
    agentcg_workload_memory_bytes{workload}                              gauge
    agentcg_call_memory_bytes{workload,call,class,stage}                 gauge
    agentcg_call_budget_bytes{workload,call,class,stage}                 gauge (calls with a budget)
"""
from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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


def serve(status: Callable[[], dict], port: int, addr: str = "127.0.0.1"):
    """Serve /metrics on addr:port from a thread; the server (call .shutdown() to stop)."""
    server, _thread = start_http_server(port, addr=addr, registry=registry(status))
    return server
