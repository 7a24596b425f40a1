"""Bash command classifier: what kind of work a tool call does (test, install, git, explore, python, build, other).

The resource profile of a tool call follows from what it runs: a test suite or an install bursts memory and CPU,
`grep` or `git diff` barely registers. Agents wrap the real command in shell glue (`cd /testbed && source
venv/bin/activate && PYTHONPATH=src python -m pytest ... 2>&1 | tail -30`), so the classifier looks through the
glue instead of at the first word.

Precedence, in order:

1. The command is split into segments on `&&`, `||`, `;`, `&` and newlines, and each segment into pipeline stages
   on `|` (quotes, `$(...)` and here-document bodies are respected, so a `python -c "..."` body or a heredoc's
   text never counts as commands).
2. In each stage, wrappers and prefixes are peeled off: environment assignments (`FOO=1`), `sudo`, `time`,
   `timeout 60`, `env`, `nice`, `nohup`, `uv run`, `poetry run`, `pipenv run`, shell keywords (`do`, `then`, ...).
3. If any stage anywhere is a test run (pytest, `python -m pytest`/`unittest`, tox, nox, `npm test`, `go test`,
   `cargo test`, `make test`/`check`, a `test_*.py` script, ...), the whole command is `test`: the test run
   dominates the call's resources whatever glue surrounds it.
4. Otherwise the category is that of the first meaningful command: the first stage of the first segment that is
   not shell glue (`cd`, `source`, `export`, `echo`, `mkdir`, `rm`, `set`, loop headers, ...): `git diff | head`
   is `git`, `echo y | python x.py` is `python`.
5. A command of nothing but glue is `other`.

Non-Bash tools are their own category: `classify_call("Read", None) == "Read"`.
"""
from __future__ import annotations

import re

CATEGORIES = ("test", "install", "git", "explore", "python", "build", "other")

_PYTHON = re.compile(r"^(python|pypy)(\d+(\.\d+)*)?$")
_PIP = re.compile(r"^pip(\d+(\.\d+)*)?$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\+?=")
_TEST_SCRIPT = re.compile(r"^(test_.*|.*_test|tests?|runtests?|run_tests?)\.py$")

# Commands that set the stage for the real work and say nothing about its resource use.
_GLUE = {"cd", "pushd", "popd", "source", ".", "export", "unset", "set", "echo", "printf", "true", "false", ":",
         "sleep", "clear", "mkdir", "rm", "touch", "alias", "shopt", "ulimit", "umask", "hash", "wait", "exit",
         "return", "for", "while", "until", "if", "elif", "case", "esac", "done", "fi", "test", "[", "[[", "}", ")",
         "trap", "read", "local", "declare", "deactivate"}
# Prefixes dropped before looking at the command itself.
_KEYWORDS = {"do", "then", "else", "!", "{", "(", "time", "nohup", "exec", "command", "builtin"}
_WRAPPERS_WITH_OPTIONS = {"sudo", "nice", "ionice", "stdbuf", "taskset", "chrt", "xvfb-run"}
_TEST_COMMANDS = {"pytest", "py.test", "tox", "nox", "nosetests", "nose2", "trial", "ctest", "jest", "mocha",
                  "vitest", "phpunit", "rspec", "hypothesis"}
_TEST_MODULES = {"pytest", "unittest", "nose", "nose2", "tox", "nox", "twisted.trial", "doctest", "hypothesis"}
_TEST_TARGETS = {"test", "tests", "check", "unittest", "unit", "test-all", "testall", "unit-test", "unit-tests",
                 "integration-test", "pytest"}
_EXPLORE = {"ls", "ll", "dir", "cat", "less", "more", "head", "tail", "grep", "egrep", "fgrep", "rg", "ag", "ack",
            "find", "fd", "locate", "wc", "tree", "pwd", "file", "stat", "du", "df", "which", "whereis", "type",
            "readlink", "realpath", "basename", "dirname", "diff", "cmp", "md5sum", "sha1sum", "sha256sum", "nl",
            "sort", "uniq", "cut", "awk", "gawk", "hexdump", "xxd", "od", "strings", "jq", "printenv", "uname",
            "id", "whoami", "hostname", "ps", "top", "free", "nproc", "lscpu", "lsb_release", "date", "env",
            "apt-cache", "dpkg-query", "ldd", "nm", "objdump", "column", "tac", "zcat"}
_BUILD = {"make", "gmake", "cmake", "ninja", "meson", "gcc", "g++", "cc", "c++", "clang", "clang++", "ld", "tsc",
          "javac", "mvn", "gradle", "bazel", "scons", "cythonize", "f2py", "maturin", "autoreconf", "configure",
          "./configure", "webpack", "rustc"}
_INSTALL_TOOLS = {"apt", "apt-get", "aptitude", "yum", "dnf", "apk", "brew", "conda", "mamba", "micromamba",
                  "gem", "pipenv", "pipx", "easy_install", "virtualenv", "poetry", "pdm", "bundle"}
_INSTALL_SUBCOMMANDS = {"install", "uninstall", "remove", "add", "update", "upgrade", "create", "sync", "lock",
                        "ci", "i", "download", "get", "venv", "env", "reinstall", "dist-upgrade"}
_PY_OPTIONS_WITH_ARG = {"-W", "-X", "-Q"}


def classify_call(tool: str, command: str | None) -> str | None:
    """A tool call's category: the Bash category for Bash (None when the command is unknown), else the tool name."""
    if tool == "Bash":
        return classify(command) if command is not None else None
    return tool


def classify(command: str) -> str:
    """The category of a shell command line (see the module docstring for the precedence)."""
    first = None
    for segment in split_segments(command):
        for i, stage in enumerate(segment):
            words = _strip_prefixes(_words(stage))
            if not words:
                continue
            category = _classify_words(words, stage)
            if category == "test":
                return "test"
            if first is None and category is not None:
                first = category
    return first or "other"


def split_segments(command: str) -> list[list[str]]:
    """Segments (split on && || ; & and newlines) of pipeline stages (split on |), as raw text.

    Quotes, backslash escapes, `$(...)`/backtick substitutions and here-document bodies stay inside their stage;
    comments (`# ...` at the start of a word) are dropped.
    """
    segments: list[list[str]] = []
    stages: list[str] = []
    buf: list[str] = []
    heredocs: list[str] = []
    quote = None
    depth = 0  # nesting of $( ... ) and ( ... ) inside a word
    i, n = 0, len(command)

    def end_stage():
        text = "".join(buf).strip()
        buf.clear()
        if text:
            stages.append(text)

    def end_segment():
        end_stage()
        if stages:
            segments.append(list(stages))
            stages.clear()

    while i < n:
        c = command[i]
        if quote:
            buf.append(c)
            if c == "\\" and quote == '"' and i + 1 < n:
                buf.append(command[i + 1])
                i += 1
            elif c == quote:
                quote = None
            i += 1
            continue
        if c == "\\" and i + 1 < n:
            if command[i + 1] != "\n":  # a line continuation joins lines
                buf.append(command[i:i + 2])
            i += 2
            continue
        if c in "'\"`":
            quote = c
            buf.append(c)
            i += 1
            continue
        if c == "$" and command.startswith("$(", i):
            depth += 1
            buf.append("$(")
            i += 2
            continue
        if depth:
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            buf.append(c)
            i += 1
            continue
        if c == "#" and (not buf or buf[-1] in " \t\n"):
            while i < n and command[i] != "\n":
                i += 1
            continue
        if c == "<" and command.startswith("<<", i) and not command.startswith("<<<", i):
            m = re.match(r"<<-?\s*(['\"]?)([A-Za-z0-9_.-]+)\1", command[i:])
            if m:
                heredocs.append(m.group(2))
                buf.append(m.group(0))
                i += len(m.group(0))
                continue
        if c == "\n":
            end_segment()
            i += 1
            for marker in heredocs:  # skip the here-document bodies that start on the next line
                while i < n:
                    eol = command.find("\n", i)
                    line = command[i:] if eol < 0 else command[i:eol]
                    i = n if eol < 0 else eol + 1
                    if line.strip() == marker:
                        break
            heredocs.clear()
            continue
        two = command[i:i + 2]
        if two in ("&&", "||"):
            end_segment()
            i += 2
            continue
        if c == ";":
            end_segment()
            i += 1
            continue
        if c == "&" and not (buf and buf[-1] in "<>") and not command.startswith("&>", i):
            end_segment()
            i += 1
            continue
        if c == "|":
            if command.startswith("|&", i):
                i += 1
            end_stage()
            i += 1
            continue
        buf.append(c)
        i += 1
    end_segment()
    return segments


WORD_LIMIT = 4096  # characters kept of one word: what a category depends on is at the start of its words


def _words(stage: str) -> list[str]:
    """POSIX shell words (as shlex.split, comments off), each cut at WORD_LIMIT characters, in one linear pass:
    shlex builds a word a character at a time (quadratic), and the hook classifies every command an agent runs,
    however long its quoted arguments are."""
    words: list[str] = []
    word: list[str] = []
    size, started, quote = 0, False, None
    i, n = 0, len(stage)
    while i < n:
        c = stage[i]
        if quote == "'":
            end = stage.find("'", i)
            if end < 0:
                return stage.split()  # unbalanced quotes in a truncated command
            take = stage[i:end][:max(0, WORD_LIMIT - size)]
            word.append(take)
            size += len(take)
            i, quote = end + 1, None
            continue
        if quote == '"':
            if c == '"':
                quote = None
            elif c == "\\" and i + 1 < n and stage[i + 1] in '"\\':
                i += 1
                c = stage[i]
                if size < WORD_LIMIT:
                    word.append(c)
                    size += 1
            elif size < WORD_LIMIT:
                word.append(c)
                size += 1
            i += 1
            continue
        if c in " \t\n\r":
            if started:
                words.append("".join(word))
                word, size, started = [], 0, False
        elif c in "'\"":
            quote, started = c, True
        elif c == "\\":
            if i + 1 == n:
                return stage.split()  # nothing left to escape (shlex: "No escaped character")
            started = True
            if size < WORD_LIMIT:
                word.append(stage[i + 1])
                size += 1
            i += 1
        else:
            started = True
            if size < WORD_LIMIT:
                word.append(c)
                size += 1
        i += 1
    if quote:
        return stage.split()
    if started:
        words.append("".join(word))
    return words


def _strip_prefixes(words: list[str]) -> list[str]:
    """Drop environment assignments, wrappers and shell keywords in front of the command."""
    i = 0
    while i < len(words):
        w = words[i]
        base = _base(w)
        if _ASSIGNMENT.match(w) or w in _KEYWORDS or w == "(":
            i += 1
        elif w.startswith("(") and len(w) > 1:
            words = words[:i] + [w[1:]] + words[i + 1:]
        elif base == "env":
            j = i + 1
            while j < len(words) and (words[j].startswith("-") or _ASSIGNMENT.match(words[j])):
                j += 1
            if j == len(words):
                break  # bare `env` prints the environment
            i = j
        elif base == "timeout":
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 1
            i += 1  # the duration
        elif base in _WRAPPERS_WITH_OPTIONS:
            i += 1
            while i < len(words) and words[i].startswith("-"):
                i += 1
        elif base in ("uv", "poetry", "pipenv", "pdm", "hatch", "conda", "mamba") and i + 1 < len(words) \
                and words[i + 1] == "run":
            i += 2
            while i < len(words) and words[i].startswith("-"):
                i += 2 if words[i] in ("-n", "--name", "-p", "--prefix", "--with") else 1
        elif base == "coverage" and i + 1 < len(words) and words[i + 1] == "run":
            words = words[:i] + ["python"] + words[i + 2:]
        else:
            break
    return words[i:]


def _base(word: str) -> str:
    return word.rsplit("/", 1)[-1]


def _classify_words(words: list[str], stage: str) -> str | None:
    """A stage's category, or None for shell glue."""
    cmd = _base(words[0]).rstrip(")")
    args = words[1:]
    sub = next((a for a in args if not a.startswith("-")), None)
    if cmd in _GLUE:
        return None
    if cmd in ("conda", "mamba", "micromamba", "pyenv") and sub in ("activate", "deactivate", "shell"):
        return None
    if cmd in _TEST_COMMANDS:
        return "test"
    if _PYTHON.match(cmd):
        return _classify_python(args)
    if _PIP.match(cmd):
        return _classify_pip(args)
    if cmd == "git" or cmd == "gh":
        return "git"
    if cmd in ("npm", "yarn", "pnpm", "bun"):
        if sub in ("test", "t") or (sub == "run" and _next_after(args, "run", "").startswith("test")):
            return "test"
        if sub in ("install", "i", "ci", "add", "update", "upgrade", "remove"):
            return "install"
        if sub == "build" or (sub == "run" and "build" in _next_after(args, "run", "")):
            return "build"
        return "other"
    if cmd == "go":
        return {"test": "test", "build": "build", "install": "install", "get": "install",
                "mod": "install", "vet": "build"}.get(sub or "", "other")
    if cmd == "cargo":
        return {"test": "test", "nextest": "test", "build": "build", "check": "build", "install": "install",
                "add": "install", "fetch": "install"}.get(sub or "", "other")
    if cmd in ("make", "gmake"):
        targets = [a for a in args if not a.startswith("-") and "=" not in a]
        return "test" if any(t in _TEST_TARGETS or re.match(r"(test|check)[-_]", t) for t in targets) else "build"
    if cmd in ("mvn", "gradle", "./gradlew", "gradlew") and sub == "test":
        return "test"
    if cmd == "uv":
        if sub == "pip":
            return _classify_pip(args[args.index("pip") + 1:])
        return "install" if sub in _INSTALL_SUBCOMMANDS else "other"
    if cmd in _INSTALL_TOOLS:
        if cmd == "apt" and sub in ("list", "show", "search", "policy"):
            return "explore"
        return "install" if sub in _INSTALL_SUBCOMMANDS or cmd in ("easy_install", "virtualenv") else "other"
    if cmd == "dpkg":
        return "install" if "-i" in args or "--install" in args else "explore"
    if cmd in _BUILD:
        return "build"
    if cmd == "sed":
        return "other" if any(a == "-i" or a.startswith("-i") or a.startswith("--in-place") for a in args) \
            else "explore"
    if cmd == "cat" and re.search(r"(?<![0-9&>])>", re.sub(r"'[^']*'|\"[^\"]*\"", "", stage)):
        return "other"  # writes a file: cat > x << EOF
    if cmd in _EXPLORE:
        return "explore"
    return "other"


def _next_after(args: list[str], word: str, default: str) -> str:
    try:
        return args[args.index(word) + 1]
    except (ValueError, IndexError):
        return default


def _classify_python(args: list[str]) -> str:
    """python [options] (-m module | -c code | script | - | nothing) [args]."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-m" or (a.startswith("-m") and len(a) > 2):
            module = args[i + 1] if a == "-m" and i + 1 < len(args) else a[2:]
            rest = args[i + 2:] if a == "-m" else args[i + 1:]
            return _classify_module(module, rest)
        if a == "-c" or (a.startswith("-c") and len(a) > 2):
            return "python"
        if a in ("--version", "-V", "-VV"):
            return "explore"
        if a in _PY_OPTIONS_WITH_ARG:
            i += 2
            continue
        if a.startswith("-") and a != "-":
            i += 1
            continue
        if a == "-":
            return "python"
        script = _base(a)
        rest = args[i + 1:]
        if _TEST_SCRIPT.match(script):
            return "test"
        if script == "setup.py":
            return _classify_setup_py(rest)
        if script == "manage.py" and rest[:1] == ["test"]:
            return "test"
        return "python"
    return "python"


def _classify_module(module: str, rest: list[str]) -> str:
    if module in _TEST_MODULES or module.startswith("pytest"):
        return "test"
    if module == "pip":
        return _classify_pip(rest)
    if module in ("venv", "virtualenv", "ensurepip", "pipx"):
        return "install"
    if module in ("build", "nuitka", "compileall", "py_compile", "cython"):
        return "build"
    if any(part in ("test", "tests") for part in module.split(".")):
        return "test"
    return "python"


def _classify_pip(args: list[str]) -> str:
    sub = next((a for a in args if not a.startswith("-")), None)
    if sub in ("install", "uninstall", "download", "sync", "compile"):
        return "install"
    if sub == "wheel":
        return "build"
    return "explore"  # list, show, freeze, check, --version


def _classify_setup_py(rest: list[str]) -> str:
    sub = next((a for a in rest if not a.startswith("-")), None)
    if sub in ("test", "pytest", "nosetests"):
        return "test"
    if sub in ("install", "develop"):
        return "install"
    if sub in ("build", "build_ext", "build_py", "sdist", "bdist_wheel", "bdist", "egg_info", "build_src"):
        return "build"
    return "python"
