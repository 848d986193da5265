"""The condition language (DESIGN §2): every construct, precedence, escapes, errors placed at
their column, values Istio or RE2 would refuse, the printer, and the spec's meaning."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generator.errors import Place, SpecError
from generator.routing import conditions as c
from generator.routing.conditions import And, Matcher, Not, Or, Pred
from generator.routing.simulate import Request


def header(name: str, kind: str, value: str = "") -> Pred:
    return Pred("header", name, Matcher(kind, value))


A = header("x-a", "exact", "1")
B = header("x-b", "present")
C = Pred("uri", "", Matcher("prefix", "/c"))


@pytest.mark.parametrize(("text", "expected"), [
    ('header "X-A" exact "1"', A),
    ('header "x-b" present', B),
    ('query "page" prefix "1"', Pred("query", "page", Matcher("prefix", "1"))),
    ('uri regex "/a/[0-9]+"', Pred("uri", "", Matcher("regex", "/a/[0-9]+"))),
    ('uri prefix ""', Pred("uri", "", Matcher("prefix", ""))),
    ('method exact "GET"', Pred("method", "", Matcher("exact", "GET"))),
    ('authority prefix "api."', Pred("authority", "", Matcher("prefix", "api."))),
    ('scheme exact "https"', Pred("scheme", "", Matcher("exact", "https"))),
    ("port 8080", Pred("port", "", Matcher("exact", "8080"))),
    ('source label "app" = "web"', Pred("source_label", "app", Matcher("exact", "web"))),
    ('source label "app.kubernetes.io/name" = ""',
     Pred("source_label", "app.kubernetes.io/name", Matcher("exact", ""))),
    ('source namespace "web"', Pred("source_namespace", "", Matcher("exact", "web"))),
    ('gateway "mesh"', Pred("gateway", "", Matcher("exact", "mesh"))),
    ('gateway "istio-system/main"', Pred("gateway", "", Matcher("exact", "istio-system/main"))),
])
def test_every_predicate_parses(text: str, expected: Pred) -> None:
    assert c.parse(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('header "x-a" exact "1" or header "x-b" present and uri prefix "/c"', Or((A, And((B, C))))),
    ('not header "x-a" exact "1" and header "x-b" present', And((Not(A), B))),
    ('not (header "x-a" exact "1" or header "x-b" present)', Not(Or((A, B)))),
    ('(header "x-a" exact "1" or header "x-b" present) and uri prefix "/c"', And((Or((A, B)), C))),
    ('not not header "x-a" exact "1"', Not(Not(A))),
    ('header "x-a" exact "1" and header "x-b" present and uri prefix "/c"', And((A, B, C))),
    ('  header "x-a"   exact "1"  ', A),
])
def test_precedence_is_not_then_and_then_or(text: str, expected: c.Expr) -> None:
    assert c.parse(text) == expected


@pytest.mark.parametrize(("text", "value"), [
    (r'header "x" exact "say \"hi\""', 'say "hi"'),
    (r'header "x" exact "back\\slash"', "back\\slash"),
    (r'header "x" regex "a\.b\d+"', r"a\.b\d+"),  # other backslashes stay for RE2
    ('header "x" exact ""', ""),
    ('header "x" exact "ünï cödé"', "ünï cödé"),
])
def test_strings_take_backslash_escapes(text: str, value: str) -> None:
    parsed = c.parse(text)
    assert isinstance(parsed, Pred) and parsed.matcher.value == value


PLACE = Place("apps/a.yaml", 7, 11)


@pytest.mark.parametrize(("text", "column", "message"), [
    ('header "x" equals "1"', 12, "expected a matcher ('exact', 'prefix', 'regex' or 'present'), found 'equals'"),
    ("header x exact \"1\"", 8, "expected the header name (a double-quoted string), found 'x'"),
    ('header "x" exact "1" and', 25, "expected a predicate (header, query, uri, method, authority, "
                                     "scheme, port, source, gateway), 'not' or '(', found the end of the condition"),
    ('(header "x" present', 20, "expected ')' or 'and', 'or', found the end of the condition"),
    ('header "x" present header "y" present', 20, "expected 'and', 'or' or the end of the condition, "
                                                  "found 'header'"),
    ('header "x" exact "1', 18, "this string is not closed (missing '\"')"),
    ("port 0", 6, "port 0 is not between 1 and 65535"),
    ("port 80a", 6, "'80a' is not a number"),
    ('source "app"', 8, "expected 'label' or 'namespace' after 'source', found the string \"app\""),
    ('source label "app" "web"', 20, "expected '=', found the string \"web\""),
    ('header "x" exact "1" & uri present', 22, "unexpected character '&'"),
    ('header "x y" present', 8, '"x y" is not a valid header name'),
    ('query "" present', 7, "the query parameter name is empty"),
    ('header "x" prefix ""', 19, "an empty prefix is not allowed on header"),
    ('method prefix ""', 15, "an empty prefix is not allowed on method"),
    ('header "x" regex ""', 18, "an empty regex is not allowed"),
    ('source namespace "Web"', 18, '"Web" is not a valid namespace name'),
    ('source label "-app" = "x"', 14, '"-app" is not a valid label name'),
    ('gateway "a b"', 9, '"a b" is not a gateway name'),
])
def test_parse_errors_name_the_column_and_what_was_expected(text: str, column: int, message: str) -> None:
    with pytest.raises(SpecError) as info:
        c.parse(text, PLACE)
    assert info.value.message == f"in condition, column {column}: {message}"
    assert info.value.place == Place("apps/a.yaml", 7, 11 + column - 1)


def test_parse_errors_without_a_place_still_name_the_column() -> None:
    with pytest.raises(SpecError) as info:
        c.parse("nope")
    assert info.value.place is None
    assert info.value.format().startswith("error: in condition, column 1: expected a predicate")


@pytest.mark.parametrize(("regex", "hint"), [
    ("^(?!internal).*$", "RE2, which Envoy uses, has no lookahead, lookbehind or backreferences"),
    ("(?<=a)b", "RE2, which Envoy uses, has no lookahead, lookbehind or backreferences"),
    (r"(a)\\1", "RE2, which Envoy uses, has no lookahead, lookbehind or backreferences"),
    ("a**", "write it as RE2 (https://github.com/google/re2/wiki/Syntax)"),
    ("*", "write it as RE2 (https://github.com/google/re2/wiki/Syntax)"),
])
def test_regexes_that_are_not_re2_are_refused_with_a_hint(regex: str, hint: str) -> None:
    with pytest.raises(SpecError) as info:
        c.parse(f'header "x" regex "{regex}"')
    assert "is not an RE2 regex" in info.value.message
    assert info.value.hint == hint


def test_regexes_over_1024_characters_are_refused() -> None:
    c.parse(f'uri regex "{"a" * 1024}"')
    with pytest.raises(SpecError, match="this regex has 1025 characters, more than the 1024 Istio accepts"):
        c.parse(f'uri regex "{"a" * 1025}"')


# --------------------------------------------------------------------------- printing


def exprs() -> st.SearchStrategy[c.Expr]:
    text = st.sampled_from(["", "a", 'q"uote', "back\\slash", "/p", "ü"])
    name = st.sampled_from(["x-a", "x_b", "user-agent"])
    matcher = st.one_of(st.builds(Matcher, st.sampled_from(["exact", "regex"]), text.filter(bool).map(
        lambda t: t.replace("\\", "").replace('"', "") or "a")),
        st.builds(Matcher, st.just("prefix"), st.sampled_from(["a", "/p"])), st.just(Matcher("present")))
    preds = st.one_of(
        st.builds(Pred, st.just("header"), name, matcher),
        st.builds(Pred, st.just("query"), name, matcher),
        st.builds(Pred, st.sampled_from(["uri", "method", "authority", "scheme"]), st.just(""), matcher),
        st.builds(Pred, st.just("port"), st.just(""), st.sampled_from(["80", "65535"]).map(
            lambda p: Matcher("exact", p))),
        st.builds(Pred, st.just("source_label"), st.sampled_from(["app", "a.b/c"]),
                  st.sampled_from(["", "web"]).map(lambda v: Matcher("exact", v))),
        st.builds(Pred, st.sampled_from(["source_namespace", "gateway"]), st.just(""),
                  st.sampled_from(["web", "mesh"]).map(lambda v: Matcher("exact", v))),
    )
    return st.recursive(preds, lambda inner: st.one_of(
        st.builds(Not, inner),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs)))), max_leaves=8)


@settings(derandomize=True, max_examples=1000, deadline=None)
@given(exprs())
def test_printed_conditions_parse_back_to_the_same_tree(expr: c.Expr) -> None:
    assert c.parse(c.to_text(expr)) == expr


def test_printer_uses_parentheses_only_where_needed() -> None:
    assert c.to_text(Or((A, And((B, C))))) == 'header "x-a" exact "1" or header "x-b" present and uri prefix "/c"'
    assert c.to_text(And((Or((A, B)), Not(C)))) == \
        '(header "x-a" exact "1" or header "x-b" present) and not uri prefix "/c"'
    assert c.to_text(Not(And((A, B)))) == 'not (header "x-a" exact "1" and header "x-b" present)'
    assert c.to_text(header("x", "exact", 'a"b\\c')) == r'header "x" exact "a\"b\\c"'


# --------------------------------------------------------------------------- meaning


@pytest.mark.parametrize(("text", "request_", "expected"), [
    ('header "X-Env" exact "prod"', Request(headers={"x-env": "prod"}), True),
    ('header "x-env" exact "prod"', Request(headers={"X-ENV": "prod"}), True),
    ('header "x-env" exact ""', Request(), False),
    ('not header "x-env" exact ""', Request(), True),  # DESIGN §2: missing header -> false
    ('not header "x-env" exact ""', Request(headers={"x-env": ""}), False),
    ('header "x-env" present', Request(headers={"x-env": ""}), True),
    ('header "x-env" regex ".*"', Request(), False),
    ('header "ua" regex "Chrome"', Request(headers={"ua": "Chrome 120"}), False),  # full match
    ('header "ua" regex "Chrome.*"', Request(headers={"ua": "Chrome 120"}), True),
    ('query "q" prefix "a"', Request(query={"q": "ab"}), True),
    ('query "q" present', Request(), False),
    ('uri exact "/a"', Request(uri="/a"), True),
    ('method exact "GET" and scheme exact "http"', Request(), True),
    ('authority regex "api\\..*"', Request(authority="api.example"), True),
    ("port 80", Request(port=80), True),
    ('source label "app" = "web"', Request(source_labels={"app": "web"}), True),
    ('not source label "app" = "web"', Request(), True),
    ('source namespace "web"', Request(source_namespace="web"), True),
    ('gateway "mesh"', Request(), True),
    ('gateway "ns/gw"', Request(), False),
])
def test_holds_is_the_specs_meaning(text: str, request_: Request, expected: bool) -> None:
    assert c.holds(c.parse(text), request_) is expected


def test_simplify_folds_known_predicates_and_constants() -> None:
    expr = c.parse('header "x-a" exact "1" and (header "x-b" present or uri present)')
    assert c.simplify(expr) == A
    assert c.simplify(expr, {A: False}) == c.FALSE
    assert c.simplify(Not(Or((A, B))), {B: False}) == Not(A)
    assert c.atoms(expr) == {A, B, Pred("uri", "", Matcher("present"))}
