"""The HTTPRoute compiler keeps the spec's first-match meaning under Gateway API precedence.

Checked against :mod:`tests.gatewayapi_model`, a model of the precedence rules written apart
from the compiler, for random route lists and requests; and the refusals are placed.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from generator.errors import Place, SpecErrors
from generator.routing import conditions as cond
from generator.routing.compiler import SpecRoute
from generator.routing.httproute_compiler import compile_rules
from generator.routing.request import Request
from tests import gatewayapi_model as model

ATOMS = ['uri exact "/a"', 'uri exact "/a/b"', '(uri exact "/a" or uri prefix "/a/")', 'uri regex "/a.*"',
         'uri prefix "/"', '(uri exact "/a/b" or uri prefix "/a/b/")', 'header "x" exact "1"',
         'header "x" regex "[12]"', 'header "y" exact "1"', 'method exact "GET"', 'method exact "POST"',
         'query "q" exact "1"', 'query "q" regex "1|2"']
#: Negated header exact and regex predicates, carried through guard rules (``"2?"`` also accepts
#: the empty value, which a missing header does not have).
NEGATED_HEADERS = ['not header "x" exact "1"', 'not header "x" regex "[12]"', 'not header "y" exact "1"',
                   'not header "y" regex "2?"']
URIS = ["/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/b"]
SCOPE = '(uri exact "/a" or uri prefix "/a/")'


def conditions(depth: int = 2) -> st.SearchStrategy[str]:
    atom = st.one_of(st.sampled_from(ATOMS), st.sampled_from(ATOMS), st.sampled_from(NEGATED_HEADERS))
    return st.recursive(atom, lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda p: f"({p[0]} and {p[1]})"),
        st.tuples(inner, inner).map(lambda p: f"({p[0]} or {p[1]})"),
        inner.map(lambda c: f"not {c}")), max_leaves=3)


requests = st.builds(
    lambda uri, method, x, y, q: Request(uri=uri, method=method,
                                         headers={k: v for k, v in (("x", x), ("y", y)) if v is not None},
                                         query={"q": q} if q is not None else {}),
    st.sampled_from(URIS), st.sampled_from(["GET", "POST"]), st.sampled_from([None, "1", "2"]),
    st.sampled_from([None, "1"]), st.sampled_from([None, "1", "2", "3"]))


def _route(name: str, when: str | None) -> SpecRoute:
    return SpecRoute(name, when, {"route": [{"destination": {"subset": name}, "weight": 100}]},
                     Place("apps/a.yaml", 9, 13))


def _spec_choice(routes: list[SpecRoute], request: Request) -> str | None:
    for r in routes:
        if r.when is None or cond.holds(cond.parse(r.when), request):
            return r.name
    return None


def _agrees(routes: list[SpecRoute], scoped: bool, asked: list[Request]) -> bool:
    """Compile ``routes`` (narrowed to :data:`SCOPE` when ``scoped``) and check every request
    takes, under the model's precedence, the spec's first route; ``False``: refused, placed."""
    scope = SCOPE if scoped else None
    try:
        rules = compile_rules(routes, scope=scope)
    except SpecErrors as e:
        assert all(err.place is not None and err.place.path == "apps/a.yaml" and err.hint for err in e.errors)
        return False
    objects = [{"matches": [m.to_object() for m in rule.matches]} for rule in rules]
    for request in asked:
        index = model.chosen_rule(objects, request.uri, request.method, request.headers, request.query)
        got = None if index is None else routes[rules[index].spec_index].name
        want = _spec_choice(routes, request) if not scoped or cond.holds(cond.parse(SCOPE), request) else None
        assert got == want, (request, objects)
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(whens=st.lists(conditions(), min_size=1, max_size=4), catch_all=st.booleans(),
       scoped=st.booleans(), asked=st.lists(requests, min_size=1, max_size=25))
def test_precedence_ordered_rules_mean_the_spec_first_match(whens, catch_all, scoped, asked):
    """``scoped``: the routes narrowed to an exposed path, as the Gateway's HTTPRoute is."""
    routes = [_route(f"r{i}", w) for i, w in enumerate(whens)] + ([_route("last", None)] if catch_all else [])
    assume(_agrees(routes, scoped, asked))


def with_negated_header() -> st.SearchStrategy[str]:
    """A condition with a negated header exact or regex predicate: alone, or ANDed or ORed
    with any condition of :func:`conditions`."""
    neg = st.sampled_from(NEGATED_HEADERS)
    return st.one_of(neg, st.tuples(neg, conditions()).map(lambda p: f"({p[0]} and {p[1]})"),
                     st.tuples(conditions(), neg).map(lambda p: f"({p[0]} and {p[1]})"),
                     st.tuples(neg, conditions()).map(lambda p: f"({p[0]} or {p[1]})"))


def test_negated_headers_are_carried_through_guard_rules_and_mostly_compile():
    """Route lists (before a catch-all, which guards need) with a negated header in some route:
    they keep the spec's first-match meaning under the model's precedence, and most compile
    (a negated header ``exact`` or ``regex`` was refused as header absence)."""
    tally: Counter[bool] = Counter()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(before=st.lists(conditions(), max_size=2), negated=with_negated_header(),
           after=st.lists(conditions(), max_size=1), scoped=st.booleans(),
           asked=st.lists(requests, min_size=1, max_size=25))
    def check(before, negated, after, scoped, asked):
        whens = [*before, negated, *after]
        routes = [_route(f"r{i}", w) for i, w in enumerate(whens)] + [_route("last", None)]
        tally[_agrees(routes, scoped, asked)] += 1

    check()
    assert tally[True] > 3 * tally[False], tally


def test_exhaustive_small_lists_agree_or_refuse():
    """Every pair of atoms, in both orders, before a catch-all: agree on every request, or refuse."""
    asked = [Request(uri=u, method=m, headers=h, query=q)
             for u in URIS for m in ("GET", "POST") for h in ({}, {"x": "1"}, {"x": "2", "y": "1"})
             for q in ({}, {"q": "1"})]
    kept = 0
    for a, b in itertools.product(ATOMS, repeat=2):
        routes = [_route("first", a), _route("second", b), _route("last", None)]
        try:
            rules = compile_rules(routes)
        except SpecErrors:
            continue
        kept += 1
        objects = [{"matches": [m.to_object() for m in rule.matches]} for rule in rules]
        for request in asked:
            index = model.chosen_rule(objects, request.uri, request.method, request.headers, request.query)
            assert routes[rules[index].spec_index].name == _spec_choice(routes, request), (a, b, request, objects)
    assert kept > len(ATOMS) ** 2 * 3 // 4


def test_a_later_longer_prefix_is_kept_from_taking_the_earlier_routes_requests():
    routes = [_route("api", '(uri exact "/api" or uri prefix "/api/")'), _route("v2", 'uri exact "/api/v2"'),
              _route("rest", None)]
    rules = compile_rules(routes)
    objects = [{"matches": [m.to_object() for m in rule.matches]} for rule in rules]
    assert {"path": {"type": "Exact", "value": "/api/v2"}} in objects[0]["matches"]
    assert routes[rules[model.chosen_rule(objects, "/api/v2")].spec_index].name == "api"


@pytest.mark.parametrize("when, column, words", [
    ('uri prefix "/api"', 0, 'uri prefix "/api" is not a whole path segment'),
    ('method exact "GET" and header "x" prefix "a"', 23, "a header prefix match"),
    ('header "x" present', 0, "a header presence match"),
    ('not header "x" present', 4, '`not header "x" present` (header absence)'),
    ('uri exact "/a" and not header "x" prefix "a"', 23, "a negated header prefix match"),
    ('header "x" exact ""', 0, "a header exact match on the empty value"),
    ('not header "x" exact ""', 4, "a header exact match on the empty value"),  # its guard's match
    ('method exact "GET" and not query "q" exact ""', 27, "a query parameter exact match on the empty value"),
    ('source label "app" = "a"', 0, "source label conditions"),
    ('authority exact "a.example"', 0, "authority conditions"),
])
def test_what_an_httproute_cannot_carry_is_refused_at_the_predicate(when, column, words):
    with pytest.raises(SpecErrors) as e:
        compile_rules([_route("r", when), _route("last", None)])
    error = e.value.errors[0]
    assert words in error.message and "gateway-api" in error.message
    assert (error.place.line, error.place.column) == (9, 13 + column)
    assert error.hint


def test_fault_injection_is_refused_with_what_to_do():
    route = SpecRoute("r", None, {"fault": {"abort": {"httpStatus": 500, "percentage": {"value": 1.0}}}},
                      Place("apps/a.yaml", 4, 7))
    with pytest.raises(SpecErrors) as e:
        compile_rules([route])
    assert "fault cannot be written in an HTTPRoute" in e.value.errors[0].message
    assert "spec.target: istio" in e.value.errors[0].hint


def test_a_refusal_in_a_guard_that_carries_the_catch_all_is_placed_at_the_guarded_route():
    """Found by the Envoy property (tests/test_envoy_gatewayapi.py): the guard of ``not uri
    regex`` carries the last route, which has no ``when`` to point at, and the refusal had no
    place at all."""
    routes = [_route("r", 'not uri regex "/a.*"'), SpecRoute("last", None, {}, None)]
    with pytest.raises(SpecErrors) as e:
        compile_rules(routes)
    assert [err.place for err in e.value.errors] == [Place("apps/a.yaml", 9, 13)]


def test_a_prefix_without_its_exact_path_hands_the_exact_path_to_the_route_the_spec_sends_it_to():
    """``not uri exact "/a"`` under the exposed path ``/a`` is ``uri prefix "/a/"`` alone: written
    ``PathPrefix /a`` (which also takes ``/a``), with ``Exact /a`` given to the later routes."""
    routes = [_route("deep", 'not uri exact "/a"'), _route("get", 'method exact "GET"'), _route("last", None)]
    rules = compile_rules(routes, scope=SCOPE)
    objects = [{"matches": [m.to_object() for m in rule.matches]} for rule in rules]
    for uri, method, want in (("/a", "GET", "get"), ("/a", "POST", "last"), ("/a/", "GET", "deep"),
                              ("/a/b", "POST", "deep"), ("/ab", "GET", None)):
        index = model.chosen_rule(objects, uri, method)
        assert (None if index is None else routes[rules[index].spec_index].name) == want, (uri, method, objects)
    with pytest.raises(SpecErrors) as e:  # nothing takes /a itself: the spec answers 404, a PathPrefix cannot
        compile_rules([_route("deep", 'not uri exact "/a"'), _route("get", 'method exact "GET"')], scope=SCOPE)
    assert "no later route takes every request to /a" in e.value.errors[0].message


def test_two_regexes_on_one_header_are_refused_for_what_they_are():
    """tests/golden/routing/two-user-agent-regexes.yaml has no ``not``; its refusal spoke of a
    negated header. The guard that checks the second regex needs the header's absence."""
    when = 'header "User-Agent" regex ".*Chrome.*" and header "User-Agent" regex ".*Mobile.*"'
    with pytest.raises(SpecErrors) as e:
        compile_rules([_route("chrome-mobile", when), SpecRoute("last", None, {}, None)])
    error, = e.value.errors
    assert error.message.startswith('route \'chrome-mobile\': two matchers on header "user-agent" cannot be written')
    assert error.place == Place("apps/a.yaml", 9, 13) and "one regex" in error.hint


def test_a_negated_header_is_carried_by_guard_rules_that_outrank_the_route_by_their_header_match():
    """``not header "x" exact "1"`` was refused as header absence. The guard rules match the
    header's value (one header match more than the route's rule, which they outrank) and send
    those requests where the later routes do; a request without the header takes the route."""
    routes = [_route("beta", 'method exact "GET" and not header "x" exact "1"'), _route("a", 'uri exact "/a"'),
              _route("last", None)]
    rules = compile_rules(routes)
    objects = [{"matches": [m.to_object() for m in rule.matches]} for rule in rules]
    assert [r.name for r in rules] == ["beta-guard-1-a", "beta-guard-1-last", "beta", "a", "last"]
    assert objects[1]["matches"][0] == {"path": {"type": "PathPrefix", "value": "/"}, "method": "GET",
                                        "headers": [{"name": "x", "type": "Exact", "value": "1"}]}
    assert objects[2]["matches"][0] == {"path": {"type": "PathPrefix", "value": "/"}, "method": "GET"}
    for uri, method, headers, want in (("/b", "GET", {}, "beta"), ("/b", "GET", {"x": "2"}, "beta"),
                                       ("/a", "GET", {"x": "2"}, "beta"), ("/b", "GET", {"x": "1"}, "last"),
                                       ("/a", "GET", {"x": "1"}, "a"), ("/a", "POST", {}, "a"),
                                       ("/b", "POST", {"x": "2"}, "last")):
        index = model.chosen_rule(objects, uri, method, headers)
        assert routes[rules[index].spec_index].name == want, (uri, method, headers, objects)


def test_a_negated_header_without_a_later_catch_all_is_refused_at_the_predicate():
    with pytest.raises(SpecErrors) as e:
        compile_rules([_route("beta", 'method exact "GET" and not header "x" exact "1"'),
                       _route("a", 'uri exact "/a"')])
    error, = e.value.errors
    assert "needs guard routes" in error.message and error.place == Place("apps/a.yaml", 9, 13 + 27)
    assert error.hint == "add a last route without `when`"


def test_a_guard_rule_outranked_by_a_later_rule_is_named_as_a_guard_rule():
    """The Envoy property drew negated headers before routes whose guard rules cannot be kept
    in order, and the refusal read "route 'r1' outranks route 'r1'", with the hint to move 'r1'
    before 'r1': it named each rule by the route it carries, not as the guard rule it is."""
    routes = [_route("r0", 'method exact "GET" and not header "x" exact "1"'), _route("r1", 'uri regex "/a.*"'),
              _route("r2", '(uri exact "/a/b" or uri prefix "/a/b/")'), _route("last", None)]
    with pytest.raises(SpecErrors) as e:
        compile_rules(routes)
    error, = e.value.errors
    assert error.message.startswith("the guard rule of route 'r0' that sends on to 'r2' outranks the guard rule "
                                    "of route 'r0' that sends on to 'r1' (which comes first)"), error.message
    assert "move" not in error.hint and error.place is not None
