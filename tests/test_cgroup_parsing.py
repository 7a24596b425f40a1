import pytest

from agentcg.cgroup import parse_keyed, parse_pressure, values_close


def test_keyed_files():
    assert parse_keyed("low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\n") == {
        "low": 0, "high": 12, "max": 3, "oom": 1, "oom_kill": 1}
    assert parse_keyed("populated 1\nfrozen 0\n")["populated"] == 1


def test_pressure_file():
    p = parse_pressure("some avg10=1.50 avg60=0.30 avg300=0.00 total=12345\n"
                       "full avg10=0.00 avg60=0.00 avg300=0.00 total=100\n")
    assert p["some"]["avg10"] == 1.5 and p["full"]["total"] == 100


def test_values_close_tolerance():
    assert values_close(50, 52, 3) and not values_close(50, 60, 3)


# FileCache re-reads a file from the start on every read; a file that went away reads as FileNotFoundError.
def test_file_cache_rereads_and_reports_removed_files(tmp_path):
    from agentcg.cgroup import FileCache
    f = tmp_path / "cg" / "memory.current"
    f.parent.mkdir()
    f.write_text("100\n")
    cache = FileCache()
    assert cache.read(f) == "100\n"
    with open(f, "r+") as out:  # in place, as the kernel regenerates it
        out.write("250\n")
    assert cache.read(f) == "250\n"
    cache.forget(tmp_path / "cg")
    f.unlink()
    with pytest.raises(FileNotFoundError):
        cache.read(f)
    cache.close()


def test_a_child_watch_says_when_a_child_came_or_went_and_only_then(tmp_path):
    from agentcg.cgroup import ChildWatch
    watch = ChildWatch()

    def look(path):
        watch.poll()
        return watch.changed(path)
    try:
        assert look(tmp_path), "first look: list it"
        assert not look(tmp_path)
        (tmp_path / "call-1").mkdir()
        assert look(tmp_path) and not look(tmp_path)
        (tmp_path / "call-1").rmdir()
        assert look(tmp_path)
        (tmp_path / "file").write_text("x")  # a file is not a child cgroup
        assert not look(tmp_path)
        gone = tmp_path / "gone"
        gone.mkdir()
        assert look(gone) and look(tmp_path)
        gone.rmdir()
        assert look(gone), "removed: cannot be watched, so it always counts as changed"
        assert look(tmp_path / "never-was")
    finally:
        watch.close()


def test_the_controller_reads_memavailable_and_swapfree_in_bytes():
    from agentcg.controller import meminfo
    text = ("MemTotal:       24000000 kB\nMemAvailable:    1000 kB\nSwapTotal:  0 kB\nSwapFree:   2 kB\n"
            "HugePages_Total: 0\n")
    assert meminfo(lambda _: text) == {"MemAvailable": 1024000, "SwapFree": 2048}
