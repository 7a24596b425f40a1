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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_on_localhost_when_asked():
    port = free_port()
    server = metrics.serve(lambda: STATUS, port)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        metrics.stop(server)
    assert "agentcg_ticks_total 7.0" in body


def get_unix(path, request: bytes = b"GET /metrics HTTP/1.0\r\n\r\n") -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


# By default the endpoint is a socket only root can open: a tool call cannot read every tenant's workloads.
def test_the_default_endpoint_is_a_root_only_socket(tmp_path):
    import os
    path = tmp_path / "metrics.sock"
    server = metrics.serve(lambda: STATUS, socket_path=path)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        reply = get_unix(path)
        assert reply.startswith(b"HTTP/1.0 200") and b"agentcg_ticks_total 7.0" in reply
        assert get_unix(path, b"GET /other HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 404")
    finally:
        metrics.stop(server)
    assert not path.exists(), "the socket goes with the server"


def test_a_taken_port_is_one_error_not_a_crash():
    import pytest
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(metrics.MetricsError, match="cannot serve metrics on 127.0.0.1:"):
            metrics.serve(lambda: STATUS, s.getsockname()[1])


# A client that connects and sends nothing is dropped after the handler's timeout; the next scrape is served.
def test_a_silent_client_does_not_hold_the_endpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics._Handler, "timeout", 0.5)
    path = tmp_path / "metrics.sock"
    server = metrics.serve(lambda: STATUS, socket_path=path)
    try:
        with socket.socket(socket.AF_UNIX) as idle:
            idle.connect(str(path))
            assert b"agentcg_ticks_total" in get_unix(path)
    finally:
        metrics.stop(server)


# Scrapes read the snapshot the controller published, never the controller itself.
def test_a_scrape_reads_the_published_snapshot():
    snap = metrics.Snapshot()
    assert "agentcg_ticks_total 0.0" in metrics.text(snap.get)
    snap.publish(STATUS)
    assert "agentcg_ticks_total 7.0" in metrics.text(snap.get)


def test_a_daemon_whose_metrics_port_is_taken_stops_before_making_anything(tmp_path):
    import threading

    import pytest

    from agentcg import daemon
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        cfg = daemon.DaemonConfig(root=tmp_path / "root", state=tmp_path / "state", metrics_port=s.getsockname()[1],
                                  workloads=[{"name": "w1"}])
        caught = []
        t = threading.Thread(target=lambda: caught.append(pytest.raises(daemon.ConfigError, daemon.run, cfg)))
        t.start()
        t.join(30)
    assert caught and "cannot serve metrics" in str(caught[0].value)
    assert not (tmp_path / "root").exists(), "no cgroup tree was made"
    assert [p.name for p in (tmp_path / "state").iterdir()] == [], "the socket bound first is gone again"
