"""The condition compiler is exact: for random route lists and random requests, the Istio
routes it emits, evaluated as Istio would (:mod:`generator.routing.simulate`), send every request
where the spec's first-match list sends it.

Every compiled list is also checked against Istio's VirtualService CRD schema.

Conditions are drawn over a small alphabet of fields and values so that random requests hit
and miss every predicate: negations, nesting, several predicates on one field, matchers that
accept the empty string (the ``withoutHeaders`` trap), scopes like the renderer's.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from generator.errors import SpecErrors
from generator.routing import compiler as routing
from generator.routing import conditions, simulate
from tests import istio_crds

VALUES = ["", "a", "ab", "b", "ba"]
REGEXES = ["a.*", ".*b", "a*", "(a|b)a", "b+", ".*"]
PATHS = ["/", "/a", "/ab", "/b", "/a/b"]
URI_REGEXES = ["/a.*", "/(a|b)", "/a/.*"]


def string_matcher(values: list[str], regexes: list[str], empty_prefix: bool) -> st.SearchStrategy[str]:
    prefixes = [v for v in values if v or empty_prefix]
    return st.one_of(
        st.sampled_from(values).map(lambda v: f"exact {conditions.quote(v)}"),
        st.sampled_from(prefixes).map(lambda v: f"prefix {conditions.quote(v)}"),
        st.sampled_from(regexes).map(lambda v: f"regex {conditions.quote(v)}"),
        st.just("present"),
    )


def predicates(fields: tuple[str, ...]) -> st.SearchStrategy[str]:
    options = {
        "header": st.tuples(st.sampled_from(["x-a", "X-B"]), string_matcher(VALUES, REGEXES, False))
        .map(lambda t: f"header {conditions.quote(t[0])} {t[1]}"),
        "query": string_matcher(VALUES, REGEXES, False).map(lambda m: f'query "q" {m}'),
        "uri": string_matcher(PATHS, URI_REGEXES, True).map(lambda m: f"uri {m}"),
        "method": st.sampled_from(['method exact "GET"', 'method exact "POST"', 'method prefix "P"',
                                   'method regex "P.*"']),
        "port": st.sampled_from(["port 80", "port 8080"]),
        "source": st.sampled_from(['source label "app" = "x"', 'source label "app" = "y"',
                                   'source namespace "ns1"']),
        "gateway": st.sampled_from(['gateway "mesh"', 'gateway "ns/gw"']),
    }
    return st.one_of(*(options[f] for f in fields))


def condition_texts(fields: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.recursive(
        predicates(fields),
        lambda inner: st.one_of(
            inner.map(lambda c: f"not {c}"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]}) and ({t[1]})"),
            st.tuples(inner, inner).map(lambda t: f"({t[0]}) or ({t[1]})"),
        ),
        max_leaves=6,
    )


#: Requests checked per route list.
REQUESTS = 150
MAYBE = [None, *VALUES]


def requests(rnd: random.Random, n: int) -> list[simulate.Request]:
    """``n`` requests over the alphabet: each header and parameter absent, empty or set."""
    out = []
    for _ in range(n):
        xa, xb, qq = rnd.choice(MAYBE), rnd.choice(MAYBE), rnd.choice(MAYBE)
        app = rnd.choice([None, "x", "y"])
        headers = {k: v for k, v in (("X-A", xa), ("x-b", xb)) if v is not None}
        out.append(simulate.Request(
            headers=headers, query={} if qq is None else {"q": qq}, uri=rnd.choice(PATHS),
            method=rnd.choice(["GET", "POST", "PUT"]), port=rnd.choice([80, 8080]),
            source_labels={} if app is None else {"app": app},
            source_namespace=rnd.choice(["ns1", "ns2"]), gateway=rnd.choice(["mesh", "ns/gw"])))
    return out


#: What the compiler may refuse, by design (docs/conditions.md "What is refused").
REFUSALS = ("cannot both be required", "cannot be in one Istio match", "needs guard routes",
            "cannot be guarded", "exceed the bound", "cannot be expressed in this context")


def spec_route(routes: list[tuple[str, conditions.Expr]], scope: conditions.Expr,
               request: simulate.Request) -> str | None:
    """The spec's meaning: the first route whose condition (and the scope) holds."""
    if not conditions.holds(scope, request):
        return None
    return next((name for name, expr in routes if conditions.holds(expr, request)), None)


def check(whens: list[str | None], scope: str | None, reqs: list[simulate.Request]) -> None:
    names = [f"r{i}" for i in range(len(whens))]
    routes = [routing.SpecRoute(n, w, {"route": [{"destination": {"host": "h", "subset": n}}]})
              for n, w in zip(names, whens)]
    try:
        http = routing.compile_http(routes, scope=scope)
    except SpecErrors as e:
        for err in e.errors:
            reason = next((r for r in REFUSALS if r in err.message), None)
            assert reason, err.message
            event(f"refused: {reason}")
        return
    event("compiled with guards" if any("-guard-" in r["name"] for r in http) else "compiled")
    vs = {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "app"},
          "spec": {"hosts": ["app"], "gateways": ["mesh", "ns/gw"], "http": http}}
    assert istio_crds.problems(vs) == []
    spec = [(r.name, conditions.TRUE if r.when is None else conditions.parse(r.when)) for r in routes]
    scope_expr = conditions.TRUE if scope is None else conditions.parse(scope)
    for request in reqs:
        expected = spec_route(spec, scope_expr, request)
        outcome = simulate.evaluate(http, request)
        # istiod never leaves a compiled VirtualService out of a sidecar's config (its default
        # route would send the request to every version, whatever the spec says)
        assert request.gateway != "mesh" or outcome.kind != simulate.OMITTED, (whens, request, http)
        got = None if outcome.route is None else routing.spec_route_name(outcome.route["name"], names)
        assert got == expected, (whens, scope, request, http)
        if got is not None:
            assert simulate.destinations(outcome.route) == {got: 100}
        elif outcome.route is not None:
            assert outcome.route == {"name": routing.NO_ROUTE, **routing.NO_ROUTE_BODY}


def many(n: int) -> settings:
    return settings(derandomize=True, deadline=None, max_examples=n,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@many(3000)
@given(st.lists(condition_texts(("header", "query", "uri", "method", "port")), min_size=1, max_size=4),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_route_lists_compile_exactly(whens: list[str], catch_all: bool, seed: int) -> None:
    check([*whens, None] if catch_all else whens, None, requests(random.Random(seed), REQUESTS))


@many(1500)
@given(st.lists(condition_texts(("header", "uri", "source", "gateway")), min_size=1, max_size=3),
       st.sampled_from([None, 'gateway "mesh" or (gateway "ns/gw" and (uri prefix "/a"))',
                        'gateway "mesh" or (gateway "ns/gw" and (uri prefix "/a" or uri prefix "/b"))']),
       st.integers(0, 2**32 - 1))
def test_scoped_route_lists_compile_exactly(whens: list[str], scope: str | None,
                                            seed: int) -> None:
    check([*whens, None], scope, requests(random.Random(seed), REQUESTS))


@many(1500)
@given(st.lists(condition_texts(("query", "uri", "method", "port", "source")), min_size=1, max_size=4),
       st.integers(0, 2**32 - 1))
def test_guard_heavy_route_lists_compile_exactly(whens: list[str], seed: int) -> None:
    """Only negations Istio cannot express directly, before a catch-all: guards everywhere."""
    check([*whens, None], None, requests(random.Random(seed), REQUESTS))


PATTERNS = ["abc", "ab+c", "a?bc", "ab*", "a|b", "(ab)c", "^/api/.*", r"\.x.*", "[ab]c", "a{2}b",
            "abc$", "x(y|z)", r"a\d+", "(?i)abc", "a.b", r"/v1\/x", "ab(c|)d"]
#: RE2 syntax Python's ``re`` does not share (so ``from_regex`` cannot draw from them): a
#: class whose first member is ``]``, POSIX classes, ``\Q...\E`` quoting, Unicode classes.
RE2_PATTERNS = ["/ab[^](]x|/y", "/ab[]a]x|/y", "/a[[:alpha:]]+|/b", "[[:digit:]]/x", r"\Q/a(\E|/y",
                r"\Q/a|b\E", r"/x\pL", "/a[^]]*", r"(?i)/Ab", "/a(?i:b)c", r"/a\C"]
ALPHABET = "/abxy()]|[:1AB"


@many(400)
@given(st.sampled_from(PATTERNS).flatmap(lambda p: st.tuples(st.just(p), st.from_regex(p, fullmatch=True))))
def test_literal_prefix_starts_every_full_match(case: tuple[str, str]) -> None:
    """Merging a prefix into a regex relies on it: every value the regex accepts starts with it."""
    pattern, value = case
    if conditions.compiled(pattern).fullmatch(value):
        assert value.startswith(routing.literal_prefix(pattern))


@many(600)
@given(st.sampled_from(RE2_PATTERNS), st.text(ALPHABET, max_size=7))
def test_literal_prefix_reads_re2_syntax_as_re2_does(pattern: str, tail: str) -> None:
    """Prefixes of RE2-only syntax: every RE2 full match starts with the prefix claimed."""
    prefix = routing.literal_prefix(pattern)
    for value in (tail, "/" + tail, "/a" + tail, "/ab" + tail, "/ab(" + tail, "/a(" + tail):
        if conditions.compiled(pattern).fullmatch(value):
            assert value.startswith(prefix), (pattern, value, prefix)


def test_a_prefix_is_never_absorbed_by_a_regex_it_does_not_bound() -> None:
    """``uri prefix "/ab" and uri regex "/ab[^](]x|/y"``: the regex also takes ``/y``, so the
    prefix cannot be dropped; one match block cannot hold both, and the compiler says so."""
    for regex in ("/ab[^](]x|/y", r"\Q/ab(\E|/y", "/ab[[:alpha:]]|/y"):
        when = f'uri prefix "/ab" and uri regex {conditions.quote(regex)}'
        routes = [routing.SpecRoute("r1", when, {}), routing.SpecRoute("default", None, {})]
        try:
            http = routing.compile_http(routes)
        except SpecErrors as e:
            assert "cannot both be required in one Istio match" in e.errors[0].message
            continue
        hit = simulate.match_http(http, simulate.Request(uri="/y"))
        assert hit is not None and hit[1]["name"] == "default", (regex, http)
