"""Hostile YAML gets a placed error, never a traceback or a crash: deep nesting (1,000 and
100,000 deep), explicit tags, the documented input limits, and hosts longer than DNS allows
(render, check and validate agreeing)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from generator.errors import SpecError
from generator.spec import loader
from tests.conftest import ROOT, run_meshgen


def load(text: str):
    return loader.load_document(Path("x.yaml"), "x.yaml", text=text)


def refusal(text: str) -> str:
    with pytest.raises(SpecError) as caught:
        load(text)
    return caught.value.format()


@pytest.fixture
def bundled(tmp_path) -> Path:
    """A copy of the bundled example's specs."""
    for folder in ("apps", "environments"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


@pytest.mark.parametrize("depth", [1_000, 100_000])
@pytest.mark.parametrize("where", ["environments/dev.yaml", "apps/books.yaml"])
def test_deep_nesting_is_a_placed_error_not_a_crash(bundled, where, depth):
    with (bundled / where).open("a") as f:
        f.write("deep: " + "[" * depth + "]" * depth + "\n")
    proc = run_meshgen("validate", cwd=bundled)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"{where}:" in proc.stderr and "error: lists and mappings nest more than 64 deep" in proc.stderr


def test_nesting_up_to_the_limit_loads_and_one_more_is_refused():
    def nested(depth: int) -> str:  # the top mapping is depth 1
        return "a: " + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "\n"

    assert load(nested(loader.MAX_DEPTH)).data["a"]
    assert refusal(nested(loader.MAX_DEPTH + 1)).startswith(f"x.yaml:1:{3 + loader.MAX_DEPTH}: error: lists and "
                                                            f"mappings nest more than {loader.MAX_DEPTH} deep")
    block = "".join("  " * i + "k:\n" for i in range(loader.MAX_DEPTH)) + "  " * loader.MAX_DEPTH + "v: 1\n"
    assert refusal(block).startswith(f"x.yaml:{loader.MAX_DEPTH + 1}:{2 * loader.MAX_DEPTH + 1}: error: ")


def test_aliases_cannot_nest_past_the_limit():
    lines = ["a0: &a0 [1]"] + [f"a{i}: &a{i} [[[[[[[[[[*a{i - 1}]]]]]]]]]]" for i in range(1, 10)]
    assert "nest more than 64 deep (aliases expanded)" in refusal("\n".join(lines) + "\n")


@pytest.mark.parametrize(("text", "message"), [
    ("key: !!bool yes environment\n", "x.yaml:1:6: error: 'yes environment' does not read as a boolean "
                                      "(hint: remove the tag !!bool, or quote the value to keep it as text)"),
    ("key: !!int ten\n", "x.yaml:1:6: error: 'ten' does not read as an integer"),
    ("key: !!float many\n", "x.yaml:1:6: error: 'many' does not read as a number"),
    ("key: !!timestamp 2001-12-14\n", "x.yaml:1:6: error: tag !!timestamp is not supported"),
    ("key: !!binary aGVsbG8=\n", "x.yaml:1:6: error: tag !!binary is not supported"),
    ("key: !!python/object/apply:os.system [echo]\n",
     "x.yaml:1:6: error: tag !!python/object/apply:os.system is not supported"),
    ("key: !!python/name:os.system ''\n", "x.yaml:1:6: error: tag !!python/name:os.system is not supported"),
    ("key: !foo bar\n", "x.yaml:1:6: error: tag !foo is not supported"),
    ("key: !!set {a, b}\n", "x.yaml:1:6: error: tag !!set is not supported"),
    ("key: !!omap [a: 1]\n", "x.yaml:1:6: error: tag !!omap is not supported"),
    ("!!bool yes please: 1\n", "x.yaml:1:1: error: 'yes please' does not read as a boolean"),
    ("key: " + "9" * 5000 + "\n", "x.yaml:1:6: error: '9999999999999999999999999999999999999...' does not read "
                                  "as an integer (hint: quote it to keep it as text)"),
    ("a: &x 1\nb: &x 2\n", "x.yaml:2:4: error: duplicate anchor &x (first defined at line 1)"),
])
def test_explicit_tags_and_unreadable_values_are_placed_errors(text, message):
    assert refusal(text).startswith(message)


def test_standard_tags_are_read_as_their_type_and_dates_stay_text():
    data = load("a: !!str 5\nb: !!int '7'\nc: !!bool 'true'\nd: !!null ''\ne: !!seq [1]\nf: !!map {g: 1}\n"
                "h: 2024-05-01\n").data
    assert data == {"a": "5", "b": 7, "c": True, "d": None, "e": [1], "f": {"g": 1}, "h": "2024-05-01"}


def test_file_size_limit(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" + "# padding\n" * (loader.MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(SpecError) as caught:
        loader.load_document(path, "apps/big.yaml")
    assert caught.value.format().startswith(f"apps/big.yaml:1:1: error: file is {path.stat().st_size:,} bytes; "
                                            f"the limit is {loader.MAX_FILE_BYTES:,} bytes (1024 KiB)")


def test_string_and_value_count_limits():
    assert load("a: " + "x" * loader.MAX_STRING + "\n").data["a"] == "x" * loader.MAX_STRING
    assert refusal("a: '" + "x" * (loader.MAX_STRING + 1) + "'\n").startswith(
        f"x.yaml:1:4: error: a value of {loader.MAX_STRING + 1:,} characters; the limit is {loader.MAX_STRING:,}")
    many = "a: [" + ", ".join(["1"] * loader.MAX_NODES) + "]\n"
    assert f"more than {loader.MAX_NODES:,} values in one file" in refusal(many)


LONG = "a" * 1000 + ".example.com"
LABEL = "b" * 64 + ".example.com"
LONGEST = ".".join(["c" * 63] * 3 + ["d" * 61])  # 253 characters, labels of 63


@pytest.mark.parametrize(("host", "message"), [
    (LONG, "expose host 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa....example.com' is 1012 characters; "
           "a DNS name has at most 253"),
    (LABEL, f"expose host {LABEL!r}: label 'bbbbbbbbbbbbbbbbbbbb...' is 64 characters; a DNS label has at most 63"),
    ("*." + LONGEST, "is 255 characters"),
    (LONGEST, None),
])
def test_render_check_and_validate_agree_on_hosts_in_an_override(bundled, host, message):
    env = bundled / "environments" / "dev.yaml"
    written = f'"{host}"' if host.startswith("*") else host  # a plain *. would be an alias
    env.write_text(env.read_text().replace("books.dev.example.com", written))
    column = 35 if host.startswith("*") else 34  # the host's first character, after a quote
    results = {command: run_meshgen(command, cwd=bundled) for command in ("render", "validate", "check")}
    if message is None:
        assert {c: p.returncode for c, p in results.items()} == {"render": 0, "validate": 0, "check": 0}
        return
    for command, proc in results.items():
        assert proc.returncode == 1, (command, proc.stdout, proc.stderr)
        assert f"environments/dev.yaml:10:{column}: error: " in proc.stderr, (command, proc.stderr)
        assert message in proc.stderr
    assert not (bundled / "rendered").exists()  # the failed render wrote nothing


def test_service_host_label_length_is_checked_in_the_app(bundled):
    app = bundled / "apps" / "ratings.yaml"
    text = app.read_text()
    assert "host: ratings" in text
    app.write_text(text.replace("host: ratings", "host: " + "r" * 64, 1))
    proc = run_meshgen("validate", cwd=bundled)
    assert proc.returncode == 1
    assert "error: service.host " in proc.stderr and "a DNS label has at most 63" in proc.stderr
    assert proc.stderr.startswith("apps/ratings.yaml:")


def test_the_template_time_limit_counts_cpu_time_not_a_busy_machines_waiting():
    """A template is stopped by the CPU it burns, not by the time it waits for a busy CPU
    (here: sleeping 0.6 s under a 0.3 s limit is allowed; a loop of 0.3 s CPU is stopped)."""
    import time

    from generator.render.timelimit import time_limit
    from generator.spec.templating import TemplateLimit

    with time_limit(0.3, what="waiting"):
        time.sleep(0.6)
    with pytest.raises(TemplateLimit, match="looping took longer than 0.3 s"):
        with time_limit(0.3, what="looping"):
            while True:
                pass
