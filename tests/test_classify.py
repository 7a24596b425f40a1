import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentcg.classify import CATEGORIES, classify, classify_call, split_segments

CASES = [
    # test: any test run anywhere in a && chain wins
    ("pytest tests/test_api.py -x", "test"),
    ("python -m pytest tests/ -v 2>&1 | tail -30", "test"),
    ("python3 -m pytest /testbed/dask/array/tests/test_routines.py::test_array -xvs 2>&1 | head -100", "test"),
    ("/tmp/venv/bin/python -m pytest test/cli/commands_test.py -xvs", "test"),
    ("/tmp/venv/bin/pytest tests", "test"),
    ("py.test -q", "test"),
    ("cd /testbed && python -m pytest tests/test_x.py", "test"),
    ("source venv/bin/activate && python -m pytest tests/core/network/ -x -q 2>&1 | tail -20", "test"),
    ("PYTHONPATH=/testbed/src:$PYTHONPATH python -m pytest tests/test_numpy_pixel_data.py", "test"),
    ("git stash && python -m pytest pydicom/tests/test_filewriter.py -xvs 2>&1 | tail -30", "test"),
    ("python -m venv venv && source venv/bin/activate && pip install -e . -q && python -m pytest tests/x.py -v",
     "test"),
    ("source venv/bin/activate && timeout 240 python -m pytest tests/ -xvs 2>&1 | head -200", "test"),
    ("python -m unittest discover -s tests", "test"),
    ("python3 -W ignore -m unittest tests.test_core", "test"),
    ("tox -e py311", "test"),
    ("nosetests tests/test_util.py", "test"),
    ("npm test", "test"),
    ("npm run test:unit", "test"),
    ("yarn test --watch=false", "test"),
    ("go test ./...", "test"),
    ("cargo test --release", "test"),
    ("make test", "test"),
    ("make -C /testbed test-code 2>&1 | tail -50", "test"),
    ("python setup.py test", "test"),
    ("python manage.py test polls", "test"),
    ("python test_issue.py", "test"),
    ("python /tmp/claude/scratchpad/test_fix_verification.py 2>&1 | head -100", "test"),
    ("python3 tests/runtests.py", "test"),
    ("uv run pytest -q", "test"),
    ("poetry run pytest", "test"),
    ("coverage run -m pytest tests", "test"),
    ("env PYTHONPATH=src pytest", "test"),
    ("echo y | pytest -x", "test"),
    ("cd /testbed\npython -m pytest tests/test_a.py", "test"),
    # install
    ("pip install -e .", "install"),
    ("pip install --break-system-packages flake8 2>&1 | tail -5", "install"),
    ("pip3 install requests", "install"),
    ("/tmp/venv/bin/pip install mock", "install"),
    ("python -m pip install -r requirements.txt", "install"),
    ("source venv/bin/activate && pip install --upgrade urllib3 requests", "install"),
    ("pip install duckdb pytest", "install"),  # pytest is an argument here, not a test run
    ("python3 -m venv .venv", "install"),
    ("uv pip install -e .", "install"),
    ("uv sync", "install"),
    ("poetry install", "install"),
    ("conda install -y numpy", "install"),
    ("apt-get update && apt-get install -y libxml2-dev", "install"),
    ("sudo apt install -y build-essential", "install"),
    ("npm install", "install"),
    ("npm ci", "install"),
    ("python setup.py develop", "install"),
    ("go mod download", "install"),
    # git
    ("git diff", "git"),
    ("git status", "git"),
    ("cd /testbed && git log --oneline | head -5", "git"),
    ("git show HEAD:rdflib/tools/csv2rdf.py | head -20", "git"),
    ("git stash pop", "git"),
    # explore
    ("ls -la /testbed", "explore"),
    ("cat /testbed/README.md | head -30", "explore"),
    ("grep -rn 'def foo' /testbed --include='*.py'", "explore"),
    ("rg -n TokenType sqlglot/", "explore"),
    ("find /testbed -name '*.py' | xargs grep -l styles | head -5", "explore"),
    ("head -100 /testbed/setup.py", "explore"),
    ("tail -n 50 log.txt", "explore"),
    ("sed -n '147p' /testbed/src/schemas.py", "explore"),
    ("wc -l src/*.py", "explore"),
    ("tree -L 2", "explore"),
    ("pwd", "explore"),
    ("which python3.7 || which python3.6 || which python2.7", "explore"),
    ("pip list | grep -i xarray", "explore"),
    ("pip show numpy", "explore"),
    ("python --version", "explore"),
    ("apt list --installed 2>/dev/null | grep -E 'requests' | head -20", "explore"),
    ("for app in a b; do echo \"== $app\"; grep -n name tests/$app/apps.py; done", "explore"),
    ("cat a 2>/dev/null | head", "explore"),
    ("env", "explore"),
    # python
    ("python -c \"import numba; print(numba.__version__)\"", "python"),
    ("python3 -c \"\nimport x; x.run() && print('ok')\n\"", "python"),
    ("python3 << 'EOF'\nimport sys\nprint('pytest && make test')\nEOF", "python"),
    ("python reproduce_issue.py", "python"),
    ("/tmp/venv/bin/python -c 'import abjad'", "python"),
    ("python3.10 -c 'import sys'", "python"),
    ("source /tmp/venv/bin/activate && python -c 'import pennylane'", "python"),
    ("PYTHONPATH=/testbed python -c 'import matplotlib'", "python"),
    ("echo 'a,b' | python -m rdflib.tools.csv2rdf -b http://example.org/", "python"),
    ("cd /tmp && rm -rf t && mkdir t && cd t && python -c 'import os'", "python"),
    ("python - <<EOF\nprint(1)\nEOF", "python"),
    # build
    ("make", "build"),
    ("make -j4 all", "build"),
    ("cmake -S . -B build && cmake --build build", "build"),
    ("gcc -O2 -o x x.c", "build"),
    ("cargo build --release", "build"),
    ("npm run build", "build"),
    ("python setup.py build_ext --inplace 2>&1 | tail -50", "build"),
    ("python -m build", "build"),
    ("mkdir -p build && cd build && cmake ..", "build"),
    # other
    ("rm test_fix_verification.py", "other"),
    ("sed -i 's/a/b/' src/x.py", "other"),
    ("cat > /tmp/test_array_fix.py << 'EOF'\nimport pytest\nEOF", "other"),
    ("cat << 'EOF' > /testbed/FIX_SUMMARY.md\n# python -m pytest\nEOF", "other"),
    ("curl -s https://example.com | grep video", "other"),
    ("flake8 src/", "other"),
    ("cd faker", "other"),
    ("echo $SUDO_USER", "other"),
    ("test -f setup.py && echo yes", "other"),  # the shell builtin `test`, not a test run
    ("", "other"),
]


@pytest.mark.parametrize("command,expected", CASES)
def test_classify(command, expected):
    assert classify(command) == expected


def test_every_case_uses_a_known_category_and_all_are_covered():
    assert {e for _, e in CASES} == set(CATEGORIES)


def test_non_bash_tools_are_their_own_category():
    for tool in ("Read", "Edit", "Grep", "Glob", "Write", "TodoWrite", "Task", "WebFetch"):
        assert classify_call(tool, None) == tool
    assert classify_call("Bash", "git diff") == "git"
    assert classify_call("Bash", None) is None


def test_segments_respect_quotes_heredocs_and_substitutions():
    cmd = "cd /x && python -c \"a && b; c | d\" | tail -5; cat <<EOF\nnot && a command\nEOF\necho $(ls | wc -l)"
    assert split_segments(cmd) == [
        ["cd /x"], ['python -c "a && b; c | d"', "tail -5"], ["cat <<EOF"], ["echo $(ls | wc -l)"]]


def test_unbalanced_quotes_do_not_crash():
    assert classify("python -c \"print('truncated") == "python"
    assert classify("grep 'abc") == "explore"


# Words are split as POSIX shlex splits them (the hook depends on it), but in one linear pass with each word cut
# at WORD_LIMIT characters: shlex is quadratic in a word's length.
@settings(max_examples=3000, deadline=None, database=None)
@given(st.text(alphabet="ab \t'\"\\\n$x-=|;", max_size=24))
def test_words_are_shlex_words(text):
    import shlex

    from agentcg.classify import _words
    try:
        expected = shlex.split(text, comments=False)
    except ValueError:
        expected = text.split()
    assert _words(text) == expected


def test_long_words_are_cut_not_parsed_for_seconds():
    import time

    from agentcg.classify import WORD_LIMIT, _words
    started = time.monotonic()
    words = _words("python -c '" + "x" * 2_000_000 + "' --flag")
    assert time.monotonic() - started < 2.0
    assert words[:2] == ["python", "-c"] and len(words[2]) == WORD_LIMIT and words[3] == "--flag"
