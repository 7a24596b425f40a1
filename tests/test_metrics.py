"""agentcg.metrics: what a Prometheus scrape of the daemon shows, and that names an agent chose cannot forge
series."""
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from agentcg import metrics

STATUS = {"ticks": 7, "decisions": 2, "workloads": {
    "w1": {"usage": 300, "calls": {"call-1": {"usage": 200, "budget": 1024, "cls": "test", "stage": "throttle"},
                                   "call-2": {"usage": 5, "budget": None, "cls": "git", "stage": "running"}}},
    'evil"} 1\nagentcg_ticks_total 99\n#': {"usage": 1, "calls": {}}}}


def _samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_a_scrape_shows_counters_workloads_and_calls():
    got = _samples(metrics.text(lambda: STATUS))
    assert got[("agentcg_ticks_total", ())] == 7
    assert got[("agentcg_decisions_total", ())] == 2
    assert got[("agentcg_workload_memory_bytes", (("workload", "w1"),))] == 300
    call1 = (("call", "call-1"), ("class", "test"), ("stage", "throttle"), ("workload", "w1"))
    assert got[("agentcg_call_memory_bytes", call1)] == 200
    assert got[("agentcg_call_budget_bytes", call1)] == 1024
    call2 = (("call", "call-2"), ("class", "git"), ("stage", "running"), ("workload", "w1"))
    assert ("agentcg_call_budget_bytes", call2) not in got, "no budget, no series"


def test_a_hostile_name_stays_a_label_value():
    got = _samples(metrics.text(lambda: STATUS))
    assert [v for (name, _), v in got.items() if name == "agentcg_ticks_total"] == [7]
    assert got[("agentcg_workload_memory_bytes", (("workload", 'evil"} 1\nagentcg_ticks_total 99\n#'),))] == 1


def test_serve_answers_on_localhost():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = metrics.serve(lambda: STATUS, port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown()
    assert "agentcg_ticks_total 7.0" in body
