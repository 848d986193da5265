"""meshgen's own fuzz suite: mutants of the bundled specs and hostile YAML through ``render``,
``check`` and ``validate``, in process.

Three Hypothesis strategies make the inputs:

- *structural* mutants: a bundled spec loaded, then keys deleted, values replaced by values of
  the wrong type (huge numbers, unicode, long strings, nested junk), list items duplicated,
  keys renamed, subtrees moved; dumped back in block or flow style;
- *byte-wise* mutants: the file's bytes with tokens inserted, bytes deleted or replaced, a BOM,
  CRLF line ends, tabs, truncation;
- *hostile YAML*: tags, anchors, aliases and alias bombs, merge keys, deep nesting, several
  documents, directives, control characters, huge scalars, put in a spec as a value, as a
  document, as a new app, or in ``meshgen.yaml``.

The property, for every input: each command exits 0 or 1 (never an exception); when it exits 1
it printed at least one placed error (``path:line:col: error: ...``) and nothing looking like
a traceback; a failed ``render`` leaves ``rendered/`` byte for byte as it was; and ``render``
and ``validate`` agree: one accepts the specs exactly when the other does.

Runs are bounded and derandomized: :data:`EXAMPLES` examples per strategy (a few seconds in
``make test``). ``make fuzz`` runs longer: ``MESHGEN_FUZZ_EXAMPLES=N`` examples per strategy
(default 2000 there), seeded with ``MESHGEN_FUZZ_SEED`` (default: the clock; the seed is
printed, and setting it again replays the run).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, note, seed, settings
from hypothesis import strategies as st

from generator.cli import main
from tests.conftest import ROOT

EXAMPLES = int(os.environ.get("MESHGEN_FUZZ_EXAMPLES") or 25)
SEED = os.environ.get("MESHGEN_FUZZ_SEED")
_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True)


def FUZZ(test):  # noqa: N802 - a decorator, named like hypothesis's
    """The fuzz settings, and the seed of a ``make fuzz`` run."""
    test = _SETTINGS(test)
    return seed(int(SEED))(test) if SEED else test

SPECS = sorted(p.relative_to(ROOT).as_posix() for folder in ("apps", "environments")
               for p in (ROOT / folder).glob("*.yaml"))
ORIGINAL = {rel: (ROOT / rel).read_bytes() for rel in SPECS}
COMMANDS = ("render", "check", "validate")
PLACED = re.compile(r"^[^\s:][^:]*:\d+:\d+: error: \S", re.M)


# --- the repository under test ------------------------------------------------------------


class Repo:
    """A copy of the bundled specs with a clean ``rendered/``; :meth:`reset` puts it back."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for folder in ("apps", "environments"):
            shutil.copytree(ROOT / folder, root / folder)
        assert self.run("render")[0] == 0
        self.pristine = self.snapshot()

    def snapshot(self) -> dict[str, bytes]:
        return {p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in sorted((self.root / "rendered").rglob("*")) if p.is_file()}

    def reset(self) -> None:
        for rel, data in ORIGINAL.items():
            (self.root / rel).write_bytes(data)
        for path in (self.root / "apps").iterdir():
            if f"apps/{path.name}" not in ORIGINAL:
                path.unlink()
        (self.root / "meshgen.yaml").unlink(missing_ok=True)
        if self.snapshot() != self.pristine:
            shutil.rmtree(self.root / "rendered")
            for rel, data in self.pristine.items():
                (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                (self.root / rel).write_bytes(data)

    def run(self, command: str) -> tuple[int, str, str | None]:
        """``(exit code, stderr, the traceback of an exception that escaped, or None)``."""
        result = CliRunner().invoke(main, ["-C", str(self.root), command], catch_exceptions=True)
        if result.exception is None or isinstance(result.exception, SystemExit):
            return result.exit_code, result.stderr, None
        return result.exit_code, result.stderr, "".join(traceback.format_exception(*result.exc_info))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Repo:
    return Repo(tmp_path_factory.mktemp("fuzz"))


def holds(repo: Repo, files: dict[str, bytes]) -> None:
    """Write ``files`` over the bundled specs, run every command, assert the property."""
    repo.reset()
    try:
        for rel, data in files.items():
            (repo.root / rel).write_bytes(data)
        before = repo.snapshot()
        codes = {}
        for command in COMMANDS:
            code, stderr, exception = repo.run(command)
            note(f"meshgen {command}: exit {code}\n{stderr[-3000:]}")
            assert exception is None, f"meshgen {command} raised:\n{exception}"
            assert code in (0, 1), f"meshgen {command} exited {code}: {stderr[-2000:]}"
            assert "Traceback" not in stderr
            if code == 1:
                assert PLACED.search(stderr), f"meshgen {command} failed without a placed error:\n{stderr[-2000:]}"
            if command == "render" and code:
                assert repo.snapshot() == before, "a failed render changed rendered/"
            codes[command] = code
        event(f"render exit {codes['render']}")
        assert codes["render"] == codes["validate"], f"render and validate disagree: {codes}"
    finally:
        repo.reset()


# --- strategies ---------------------------------------------------------------------------


def _keys(value: Any, found: set[str]) -> set[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            found.add(str(key))
            _keys(item, found)
    elif isinstance(value, list):
        for item in value:
            _keys(item, found)
    return found


DATA = {rel: yaml.safe_load(data) for rel, data in ORIGINAL.items()}
KNOWN_KEYS = sorted(set().union(*(_keys(d, set()) for d in DATA.values())))
TRICKY_TEXT = ["", " ", "*", "*.", "-", "~", "null", "yes", "no", "on", "0x1F", "1e999", "-0", ".nan", "100%",
               "v1", "v2", "default", "ratings", "books", "../../etc/passwd", "a" * 64, "a" * 1000 + ".com",
               "A-Upper", "ünïcödé", "日本語", "\u202e", "\ufeff", "\t", "x\ny", "{{ 7*7 }}", "{% raw %}", "$(id)",
               "0s", "1ms", "500us", "1.5s", "-1s", "99999h", "/", "//", "^(a+)+$", "[", "(?P<x>", "*.example.com"]
scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, 1, -1, 100, 101, 65535, 65536]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.sampled_from(TRICKY_TEXT), st.text(max_size=20), st.text(min_size=200, max_size=400))
values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=3),
    st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=6)), children, max_size=3)),
    max_leaves=6)


def _paths(value: Any, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*at, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_paths(item, (*at, i)))
    return out


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


@st.composite
def structural(draw: st.DrawFn) -> dict[str, bytes]:
    """One bundled spec with 1-4 structural edits, dumped back as YAML."""
    rel = draw(st.sampled_from(SPECS))
    data = copy.deepcopy(DATA[rel])
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(data)))
        op = draw(st.sampled_from(["delete", "replace", "add", "duplicate", "rename", "move", "wrap"]))
        if not path:
            continue
        parent, key = _get(data, path[:-1]), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(values)
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KNOWN_KEYS))] = draw(values)
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from(KNOWN_KEYS))] = parent.pop(key)
        elif op == "move":
            parent[key] = copy.deepcopy(_get(data, draw(st.sampled_from(_paths(data)))))
        elif op == "wrap":
            parent[key] = [parent[key]] if draw(st.booleans()) else {"value": parent[key]}
    text = yaml.safe_dump(data, default_flow_style=draw(st.booleans()), allow_unicode=draw(st.booleans()),
                          sort_keys=False, width=draw(st.sampled_from([80, 1 << 16])))
    return {rel: text.encode()}


TOKENS = [b"\t", b"\r\n", b"\r", b"\x00", b"\x07", b"\xff", b"\xc3", b"\xef\xbb\xbf", b"#", b"&a ", b"*a", b"*",
          b"!", b"!!", b"!!bool ", b"%", b"@", b"`", b"|", b">", b"- ", b"? ", b": ", b":", b",", b"[", b"]", b"{",
          b"}", b"'", b'"', b"\\", b"<<: ", b"---\n", b"...\n", b"  ", b"\n", b"-1", b"1e999", b"\xe2\x80\xae"]


@st.composite
def bytewise(draw: st.DrawFn) -> dict[str, bytes]:
    """One bundled spec with 1-5 byte-level edits."""
    rel = draw(st.sampled_from(SPECS))
    data = bytearray(ORIGINAL[rel])
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "bom", "crlf", "tabs"]))
        at = draw(st.integers(0, len(data)))
        if op == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(TOKENS), st.binary(min_size=1, max_size=8)))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif op == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "bom":
            data[0:0] = b"\xef\xbb\xbf"
        elif op == "crlf":
            data = bytearray(bytes(data).replace(b"\n", b"\r\n"))
        elif op == "tabs":
            data = bytearray(bytes(data).replace(b"  ", b"\t", draw(st.integers(1, 3))))
    return {rel: bytes(data)}


def _nested(depth: int, flow: bool) -> str:
    if flow:
        return "[" * depth + "]" * depth
    return "".join("\n" + "  " * (i + 2) + "k:" for i in range(depth)) + " 1"


HOSTILE = st.one_of(
    st.sampled_from(["!!bool yes environment", "!!int ten", "!!float x", "!!null x", "!!str 5", "!!timestamp 2001-12-14",
                     "!!binary aGVsbG8=", "!!python/object/apply:os.system [id]", "!!python/name:os.system ''",
                     "!foo bar", "!<tag:example.com,2000:x> y", "!!set {a, b}", "!!omap [a: 1]", "!!pairs [a: 1]",
                     "&a [*a]", "*nowhere", "&a 1", "{<<: {a: 1}}", "[&x 1, &x 2]", "{? [a, b] : c}", "{[1]: 2}",
                     "!!map {!!str a: 1}", "'unterminated", '"\\x00\\u0000"', "|\n  block", "2001-12-14",
                     "9" * 5000, "x" * 70_000, "1e999", ".inf", "-.inf", ".nan", "0o17", "0b101", "0x_1", "1_000",
                     "\u0085", "\u2028", "\ufeff", "\x7f"]),
    st.builds(_nested, st.sampled_from([10, 63, 64, 65, 999, 1000, 20_000]), st.booleans()),
    st.builds(lambda n: "&l0 [1]\n" + "".join(f"    l{i}: &l{i} [*l{i - 1}, *l{i - 1}, *l{i - 1}]\n"
                                              for i in range(1, n)), st.integers(2, 14)),
)


@st.composite
def hostile(draw: st.DrawFn) -> dict[str, bytes]:
    """Hostile YAML put in a bundled spec: as a new field, over a value, or as a document."""
    rel = draw(st.sampled_from(SPECS))
    text = ORIGINAL[rel].decode()
    snippet = draw(HOSTILE)
    where = draw(st.sampled_from(["field", "value", "document", "file", "settings"]))
    if where == "field":
        text += f"extra: {snippet}\n"
    elif where == "value":
        lines = text.splitlines(keepends=True)
        candidates = [i for i, line in enumerate(lines) if re.match(r"^\s*[\w.-]+: \S", line)]
        i = draw(st.sampled_from(candidates))
        key = lines[i].split(":", 1)[0]
        lines[i] = f"{key}: {snippet}\n"
        text = "".join(lines)
    elif where == "document":
        text += f"---\n{snippet}\n"
    elif where == "settings":
        key = draw(st.sampled_from(["paths", "bot", "render", "extra"]))
        return {"meshgen.yaml": f"{key}: {snippet}\n".encode()}
    else:
        return {rel: text.encode(), "apps/hostile.yaml": f"apiVersion: meshgen.io/v1alpha1\nkind: App\n"
                                                         f"metadata: {{name: hostile}}\nspec: {snippet}\n".encode()}
    return {rel: text.encode()}


# --- the properties -----------------------------------------------------------------------


@FUZZ
@given(files=structural())
def test_structural_mutants_exit_0_or_a_placed_error(repo, files):
    holds(repo, files)


@FUZZ
@given(files=bytewise())
def test_bytewise_mutants_exit_0_or_a_placed_error(repo, files):
    holds(repo, files)


@FUZZ
@given(files=hostile())
def test_hostile_yaml_exits_0_or_a_placed_error(repo, files):
    holds(repo, files)


def test_the_harness_sees_a_failure(repo):
    """The property is not vacuous: an invalid spec fails every command with a placed error."""
    text = ORIGINAL["apps/books.yaml"].replace(b"spec:", b"spec:\n  nonsense: 1", 1)
    repo.reset()
    try:
        (repo.root / "apps/books.yaml").write_bytes(text)
        for command in COMMANDS:
            code, stderr, exception = repo.run(command)
            assert (code, exception) == (1, None) and PLACED.search(stderr), (command, stderr)
    finally:
        repo.reset()
