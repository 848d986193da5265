"""The condition compiler is exact: for random route lists and random requests, the Istio
routes it emits, evaluated as Istio would (:mod:`generator.simulate`), send every request
where the spec's first-match list sends it.

Conditions are drawn over a small alphabet of fields and values so that random requests hit
and miss every predicate: negations, nesting, several predicates on one field, matchers that
accept the empty string (the ``withoutHeaders`` trap), scopes like the renderer's.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator import conditions, routing, simulate
from generator.errors import SpecErrors

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
        max_leaves=5,
    )


def requests() -> st.SearchStrategy[simulate.Request]:
    maybe = st.one_of(st.none(), st.sampled_from(VALUES))

    def build(t: tuple) -> simulate.Request:
        xa, xb, qq, uri, method, port, app, ns, gw = t
        headers = {k: v for k, v in (("X-A", xa), ("x-b", xb)) if v is not None}
        return simulate.Request(headers=headers, query={} if qq is None else {"q": qq}, uri=uri,
                                method=method, port=port,
                                source_labels={} if app is None else {"app": app},
                                source_namespace=ns, gateway=gw)

    return st.tuples(maybe, maybe, maybe, st.sampled_from(PATHS), st.sampled_from(["GET", "POST", "PUT"]),
                     st.sampled_from([80, 8080]), st.sampled_from([None, "x", "y"]),
                     st.sampled_from(["ns1", "ns2"]), st.sampled_from(["mesh", "ns/gw"])).map(build)


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
            assert any(r in err.message for r in REFUSALS), err.message
        return
    spec = [(r.name, conditions.TRUE if r.when is None else conditions.parse(r.when)) for r in routes]
    scope_expr = conditions.TRUE if scope is None else conditions.parse(scope)
    for request in reqs:
        expected = spec_route(spec, scope_expr, request)
        hit = simulate.match_http(http, request)
        got = None if hit is None else routing.spec_route_name(hit[1]["name"], names)
        assert got == expected, (whens, scope, request, http)
        if hit is not None:
            assert simulate.destinations(hit[1]) == {got: 100}


SETTINGS = settings(derandomize=True, deadline=None, max_examples=1500,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(st.lists(condition_texts(("header", "query", "uri", "method", "port")), min_size=1, max_size=3),
       st.booleans(), st.lists(requests(), min_size=40, max_size=40))
def test_route_lists_compile_exactly(whens: list[str], catch_all: bool,
                                     reqs: list[simulate.Request]) -> None:
    check([*whens, None] if catch_all else whens, None, reqs)


@settings(derandomize=True, deadline=None, max_examples=600,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(condition_texts(("header", "uri", "source", "gateway")), min_size=1, max_size=3),
       st.sampled_from([None, 'gateway "mesh" or (gateway "ns/gw" and (uri prefix "/a"))',
                        'gateway "mesh" or (gateway "ns/gw" and (uri prefix "/a" or uri prefix "/b"))']),
       st.lists(requests(), min_size=40, max_size=40))
def test_scoped_route_lists_compile_exactly(whens: list[str], scope: str | None,
                                            reqs: list[simulate.Request]) -> None:
    check([*whens, None], scope, reqs)
