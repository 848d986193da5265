"""What a newcomer reads when a spec is wrong, through the CLI: a tab is called a tab, an
indentation slip gets a hint comparing lines, a bad name gets a valid DNS-1123 name to use, a
misspelt condition word a did-you-mean, a bad duration words instead of a regex."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import build_file_tree, run_meshgen
from tests.test_refusals import APP, ENV, refused


def test_a_tab_is_named_and_the_fix_given(tmp_path: Path) -> None:
    [line] = refused(tmp_path, {"apps/web.yaml": APP.replace("  namespace: shop", "\tnamespace: shop")})
    assert line == ("apps/web.yaml:5:1: error: a tab character: YAML indents with spaces only, never tabs "
                    "(hint: replace the tab on line 5 with spaces; set your editor to insert spaces in .yaml files)")


def test_a_tab_after_a_value_is_named_too(tmp_path: Path) -> None:
    [line] = refused(tmp_path, {"apps/web.yaml": APP.replace("    v2: {labels", "  \t  v2: {labels")})
    assert "apps/web.yaml:10:3: error: a tab character" in line


def test_an_indentation_slip_gets_a_hint_comparing_the_lines(tmp_path: Path) -> None:
    [line] = refused(tmp_path, {"apps/web.yaml": APP.replace("  namespace: shop", "   namespace: shop")})
    assert line == ("apps/web.yaml:5:13: error: invalid YAML: mapping values are not allowed in this context "
                    "(hint: check the indentation: line 5 is indented 3 spaces, line 4 above it 2; the keys of "
                    "one mapping start in the same column, a nested value further right than its key; quote a "
                    "value that contains ': ')")


def test_a_key_indented_too_little_gets_the_hint(tmp_path: Path) -> None:
    [line] = refused(tmp_path, {"apps/web.yaml": APP.replace("    v2: {labels", "   v2: {labels")})
    assert line.startswith("apps/web.yaml:10:4: error: invalid YAML: did not find expected key (hint: check the "
                           "indentation: line 10 is indented 3 spaces, line 9 above it 4;")


@pytest.mark.parametrize("file,name,message,hint", [
    ("Shop", "Shop", "metadata.name: 'Shop' is not a DNS-1123 label",
     "use 'shop', and name the file shop.yaml to match"),
    ("web", "Web_Shop", "metadata.name 'Web_Shop' does not match the file name 'web'", "set metadata.name: web"),
    ("My_App", "My_App2", "metadata.name 'My_App2' does not match the file name 'My_App'",
     "use a DNS-1123 label such as 'my-app2' as metadata.name and name the file my-app2.yaml"),
])
def test_a_bad_name_gets_a_valid_dns1123_name(tmp_path: Path, file: str, name: str, message: str, hint: str) -> None:
    repo = build_file_tree(tmp_path, {"environments/dev.yaml": ENV,
                                      f"apps/{file}.yaml": APP.replace("name: web", f"name: {name}")})
    proc = run_meshgen("validate", cwd=repo)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert any(message in line and f"(hint: {hint})" in line for line in lines), lines
    assert not any(f"{name}.yaml" in line.partition("(hint:")[2] for line in lines)  # no invalid file name


@pytest.mark.parametrize("when,column,hint", [
    ('hedaer "x-beta" exact "1"', 1, "did you mean 'header'?"),
    ('header "x-beta" exakt "1"', 17, "did you mean 'exact'?"),
    ('uri prefix "/a" adn method exact "GET"', 17, "did you mean 'and'?"),
    ('source lable "app" = "web"', 8, "did you mean 'label'?"),
])
def test_a_misspelt_condition_word_gets_did_you_mean(tmp_path: Path, when: str, column: int, hint: str) -> None:
    routes = f"    - name: beta\n      when: '{when}'\n      to: v2\n    - name: default\n      to: v1\n"
    [line] = refused(tmp_path, {"apps/web.yaml": APP.split("  routes:")[0] + "  routes:\n" + routes})
    assert f"in condition, column {column}: expected " in line and line.endswith(f"(hint: {hint})")


@pytest.mark.parametrize("field,value", [("timeout", "5 seconds"), ("timeout", "1m3")])
def test_a_bad_duration_is_explained_without_the_regex(tmp_path: Path, field: str, value: str) -> None:
    [line] = refused(tmp_path, {"apps/web.yaml": APP + f"      {field}: {value}\n"})
    assert line.startswith(f"apps/web.yaml:14:16: error: spec.routes[0].{field}: '{value}' is not a duration (hint: "
                           "write a number and a unit, e.g. 500ms, 2s or 1m30s; units: ")
    assert "[0-9]" not in line and "^(" not in line


def test_schema_errors_and_the_other_checks_come_in_one_run(tmp_path: Path) -> None:
    """An unknown field in one route and weights summing to 90 in another: both in one run; a
    route the schema refuses brings no errors of its own beyond the schema's."""
    spec = APP.split("  routes:")[0] + (
        "  routes:\n"
        "    - name: beta\n"
        "      when: 'header \"x-beta\" exact \"1\"'\n"
        "      to: v2\n"
        "      retires: {attempts: 3}\n"
        "    - name: broken\n"
        "      when: 'header \"x\" exact \"1\"'\n"
        "      to: {v1: fifty}\n"
        "    - name: default\n"
        "      to: {v1: 50, v2: 40}\n")
    lines = refused(tmp_path, {"apps/web.yaml": spec})
    assert [line.partition(": error: ")[0] for line in lines] == [
        "apps/web.yaml:15:7", "apps/web.yaml:18:16", "apps/web.yaml:20:11"], lines
    assert "unknown field 'retires' in spec.routes[0] (hint: did you mean 'retries'?)" in lines[0]
    assert "spec.routes[1].to.v1" in lines[1]
    assert "weights of route 'default' sum to 90, not 100" in lines[2]


def test_an_unknown_field_in_a_route_leaves_its_other_checks(tmp_path: Path) -> None:
    spec = APP.replace("      to: {v1: 100}\n", "      to: {v1: 90}\n      retires: {attempts: 3}\n")
    lines = refused(tmp_path, {"apps/web.yaml": spec})
    assert len(lines) == 2 and "unknown field 'retires'" in lines[1] and "sum to 90" in lines[0], lines


def test_the_indentation_hint_names_where_the_keys_of_a_list_item_start(tmp_path: Path) -> None:
    [line] = refused(tmp_path, {"apps/web.yaml": APP.replace("      to: {v1: 100}", "    to: {v1: 100}")})
    assert line.startswith("apps/web.yaml:13:5: error: invalid YAML: ")
    assert ("(hint: check the indentation: line 13 is indented 4 spaces, the keys of line 12 above it 6, after "
            "`- `; the keys of one mapping start in the same column") in line


def test_a_tests_block_indented_into_the_last_route_is_one_error_that_says_so(tmp_path: Path) -> None:
    tests = ("tests:\n"
             "  - name: cart\n"
             "    request: {uri: /cart}\n"
             "    expect: {route: default, versions: {v1: 100}}\n"
             "  - request: {uri: /}\n"
             "    expect: {route: default}\n")
    spec = APP + "".join("      " + line + "\n" for line in tests.splitlines())
    lines = refused(tmp_path, {"apps/web.yaml": spec})
    assert lines == ["apps/web.yaml:14:7: error: `tests` is indented into route 'default'; move it to the level of "
                     "`routes` (hint: indent `tests:` as far as `routes:`, and its contents under it)"]
    fixed = APP + "".join("  " + line + "\n" for line in tests.splitlines())
    proc = run_meshgen("validate", cwd=build_file_tree(tmp_path / "fixed", {"environments/dev.yaml": ENV,
                                                                           "apps/web.yaml": fixed}))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("old,new,message", [
    ("  service: {host: web, port: 80}", "  service: null", "spec.service: null is not a mapping"),
    ("    v1: {labels: {version: v1}}", "    v1: {labels: {version: true}}",
     "spec.versions.v1.labels.version: true is not a string"),
    ("      to: {v1: 100}", "      to: [v1]", "spec.routes[0].to: ['v1'] is not a string or a mapping"),
    ("      to: {v1: 100}", "      to: {v1: 100}\n      timeout: \"it's\"",
     "spec.routes[0].timeout: 'it''s' is not a duration"),
    ("      to: {v1: 100}", "      to: {v1: 100}\n      fault: {abort: {httpStatus: 503, percentage: {value: [1]}}}",
     "[1] is not a number"),
    ("  namespace: shop", "  namespace: {name: shop}", "metadata.namespace: {name: 'shop'} is not a string"),
])
def test_a_value_is_echoed_as_yaml_writes_it(tmp_path: Path, old: str, new: str, message: str) -> None:
    lines = refused(tmp_path, {"apps/web.yaml": APP.replace(old, new)})
    assert any(message in line for line in lines), lines
    assert not any(word in line for line in lines for word in ("None", "True", "of type", "'object'"))


def test_a_missing_field_is_named_as_a_field(tmp_path: Path) -> None:
    [line] = refused(tmp_path, {"apps/web.yaml": APP.replace("  service: {host: web, port: 80}", "  service: {port: 80}")})
    assert line == "apps/web.yaml:7:12: error: 'host' is a required field in spec.service"


def test_a_file_that_is_not_utf8_is_placed_at_the_bad_byte(tmp_path: Path) -> None:
    repo = build_file_tree(tmp_path, {"environments/dev.yaml": ENV, "apps/web.yaml": APP})
    spec = repo / "apps/web.yaml"
    spec.write_bytes(APP.replace("  namespace: shop", "  namespace: sh\u00f6p # caf\xe9").encode("utf-8")
                     .replace("caf\u00e9".encode(), b"caf\xe9"))
    proc = run_meshgen("validate", cwd=repo)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("apps/web.yaml:5:24: error: file is not valid UTF-8: byte 0xe9 cannot be decoded"), \
        proc.stderr


@pytest.mark.parametrize("command", ["render", "validate"])
def test_an_app_without_spec_is_a_placed_error(tmp_path: Path, command: str) -> None:
    [line] = refused(tmp_path, {"apps/web.yaml": APP.split("spec:")[0]}, command)
    assert line == "apps/web.yaml:1:1: error: 'spec' is a required field"
