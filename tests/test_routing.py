"""The condition compiler on hand-picked route lists: golden outputs read by eye, Istio's CRD
schema, the errors it gives, and the names that map Istio routes back to the spec.

Each ``tests/golden/routing/<case>.yaml`` holds a spec route list (and scope), requests with
the spec route each must reach, and below the marker line the compiled ``http`` routes.
``MESHGEN_UPDATE_GOLDEN=1 pytest tests/test_routing.py`` rewrites the part below the marker;
review the diff by eye before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.errors import Place, SpecErrors
from generator.routing import compiler as routing
from generator.routing import conditions, simulate
from tests import istio_crds

GOLDEN = Path(__file__).parent / "golden" / "routing"
MARKER = "# --- compiled by meshgen (tests/test_routing.py rewrites below this line) ---\n"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))


def body(name: str) -> dict[str, Any]:
    return {"route": [{"destination": {"host": "app", "subset": name}}]}


def spec_routes(case: dict[str, Any]) -> list[routing.SpecRoute]:
    return [routing.SpecRoute(r["name"], r.get("when"), body(r["name"])) for r in case["routes"]]


def load(name: str) -> tuple[str, dict[str, Any], Any]:
    text = (GOLDEN / f"{name}.yaml").read_text()
    head, _, compiled = text.partition(MARKER)
    return head, yaml.safe_load(head), yaml.safe_load(compiled) if compiled else None


def request(spec: dict[str, Any]) -> simulate.Request:
    fields = {k: v for k, v in spec.items() if k != "route"}
    return simulate.Request(**fields)


def virtual_service(http: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "app", "namespace": "mesh"},
            "spec": {"hosts": ["app"], "gateways": ["mesh", "mesh/reviews-gateway"], "http": http}}


@pytest.mark.parametrize("name", CASES)
def test_golden_route_lists_compile_to_the_reviewed_routes(name: str) -> None:
    head, case, expected = load(name)
    http = routing.compile_http(spec_routes(case), scope=case.get("scope"))
    if os.environ.get("MESHGEN_UPDATE_GOLDEN"):
        dumped = yaml.safe_dump({"http": http}, sort_keys=False, width=100)
        (GOLDEN / f"{name}.yaml").write_text(head + MARKER + dumped)
        expected = {"http": http}
    assert expected is not None, f"no compiled routes in {name}.yaml yet; run with MESHGEN_UPDATE_GOLDEN=1"
    assert http == expected["http"]


@pytest.mark.parametrize("name", CASES)
def test_golden_requests_reach_their_route_in_the_spec_and_in_istio(name: str) -> None:
    _, case, expected = load(name)
    names = [r["name"] for r in case["routes"]]
    scope = conditions.parse(case["scope"]) if "scope" in case else conditions.TRUE
    for spec in case["requests"]:
        req = request(spec)
        in_spec = None
        if conditions.holds(scope, req):
            in_spec = next((r["name"] for r in case["routes"]
                            if "when" not in r or conditions.holds(conditions.parse(r["when"]), req)), None)
        hit = simulate.match_http(expected["http"], req)
        in_istio = None if hit is None else routing.spec_route_name(hit[1]["name"], names)
        assert (in_spec, in_istio) == (spec["route"], spec["route"]), spec


@pytest.mark.parametrize("name", CASES)
def test_golden_routes_are_valid_istio_virtual_services(name: str) -> None:
    _, _, expected = load(name)
    assert istio_crds.problems(virtual_service(expected["http"])) == []


def test_every_matcher_kind_renders_to_a_valid_istio_match() -> None:
    when = ('header "x-a" exact "1" and header "x-b" prefix "p" and header "x-c" regex "r.*" and '
            'header "x-d" present and not header "x-e" exact "" and not header "x-f" present and '
            'query "q" exact "1" and query "r" present and uri regex "/a.*" and method prefix "G" and '
            'authority exact "app" and scheme exact "https" and port 8080 and '
            'source label "app" = "web" and source namespace "web"')
    http = routing.compile_http([routing.SpecRoute("all", when, body("all"))])
    assert len(http[0]["match"]) == 2  # x-e: empty value, or absent
    assert http[1:] == [{"name": routing.NO_ROUTE, "directResponse": {"status": 404}}]  # port, sources
    assert istio_crds.problems(virtual_service(http)) == []
    gateways = routing.compile_http([routing.SpecRoute("gw", 'gateway "mesh" and uri exact "/"', body("gw"))])
    assert gateways[0]["match"] == [{"uri": {"exact": "/"}, "gateways": ["mesh"]}]
    assert istio_crds.problems(virtual_service(gateways)) == []


@pytest.mark.parametrize("when", ["port 8080", 'source namespace "ops"', 'source label "app" = "web"',
                                  'port 8080 or source namespace "ops"'])
def test_a_list_some_sidecar_gets_no_route_of_ends_in_an_explicit_404(when: str) -> None:
    """istiod leaves a VirtualService out of a proxy's config when no block applies to it, and
    the Service's default route then reaches every version; the spec means 404 there."""
    http = routing.compile_http([routing.SpecRoute("alt-port", when, body("v2"))])
    assert http[-1] == {"name": routing.NO_ROUTE, "directResponse": {"status": 404}}
    request = simulate.Request(port=80, source_namespace="default")
    assert simulate.evaluate(http, request).route == http[-1]
    assert routing.spec_route_name(routing.NO_ROUTE) is None
    assert istio_crds.problems(virtual_service(http)) == []


@pytest.mark.parametrize("routes", [
    [("a", 'header "x" exact "1"')],
    [("a", "port 8080"), ("b", 'uri prefix "/b"')],
    [("a", "port 8080"), ("default", None)],
])
def test_a_list_every_sidecar_gets_a_route_of_is_left_as_it_is(routes: list) -> None:
    http = routing.compile_http([routing.SpecRoute(n, w, body(n)) for n, w in routes])
    assert all(r["name"] != routing.NO_ROUTE for r in http)


def test_the_name_of_the_explicit_404_route_is_kept() -> None:
    with pytest.raises(SpecErrors) as e:
        routing.compile_http([routing.SpecRoute("no-route", "port 8080", body("v1"))])
    assert "route name 'no-route' is kept" in e.value.errors[0].message


def test_catch_all_alone_has_no_match_and_keeps_the_body_in_order() -> None:
    route = routing.SpecRoute("default", None, {"route": body("v1")["route"], "timeout": "5s"})
    assert routing.compile_http([route]) == [{"name": "default", **body("v1"), "timeout": "5s"}]


def test_scope_applies_to_the_catch_all_too() -> None:
    http = routing.compile_http([routing.SpecRoute("default", None, body("default"))],
                                scope='gateway "mesh" or (gateway "ns/gw" and (uri prefix "/a" or uri prefix "/b"))')
    assert http[0]["match"] == [{"gateways": ["mesh"]},
                                {"uri": {"prefix": "/a"}, "gateways": ["ns/gw"]},
                                {"uri": {"prefix": "/b"}, "gateways": ["ns/gw"]}]


def test_a_scope_that_is_not_match_blocks_is_anded_into_every_condition() -> None:
    routes = [routing.SpecRoute("beta", 'header "x" present', body("beta")),
              routing.SpecRoute("default", None, body("default"))]
    http = routing.compile_http(routes, scope='not header "x-internal" present or uri prefix "/public"')
    assert [r["match"] for r in http] == [
        [{"headers": {"x": {}}, "withoutHeaders": {"x-internal": {}}},
         {"uri": {"prefix": "/public"}, "headers": {"x": {}}}],
        [{"withoutHeaders": {"x-internal": {}}}, {"uri": {"prefix": "/public"}}]]
    # with a negated non-header predicate in the scope, even the catch-all would need a guard
    # that sends the requests outside the scope nowhere -- which Istio cannot say
    with pytest.raises(SpecErrors, match="needs guard routes"):
        routing.compile_http(routes, scope='not uri prefix "/internal"')


def test_routes_after_a_route_that_takes_everything_are_left_out() -> None:
    routes = [routing.SpecRoute("all", 'method present or header "x" present', body("all")),
              routing.SpecRoute("default", None, body("default"))]
    assert [r["name"] for r in routing.compile_http(routes)] == ["all"]


def test_two_negated_matchers_on_one_header_become_one_regex_alternation() -> None:
    http = routing.compile_http([routing.SpecRoute(
        "r", 'not header "x" exact "a.b" and not header "x" prefix "p"', body("r"))])
    assert http[0]["match"] == [{"withoutHeaders": {"x": {"regex": "(?:a\\.b)|(?:p(?s:.*))"}}}]


def test_spec_route_name_maps_guard_routes_to_the_route_they_carry() -> None:
    assert routing.spec_route_name("beta") == "beta"
    assert routing.spec_route_name("beta-guard-2-default") == "default"
    assert routing.spec_route_name("a-guard-1-b-guard-3-c-d") == "c-d"
    assert routing.spec_route_name("a-guard-1-b-guard-3-c-d", ["a", "b-guard-3-c-d", "c-d"]) == "b-guard-3-c-d"
    assert routing.spec_route_name("nope", ["a"]) is None


# --------------------------------------------------------------------------- errors

PLACE = Place("apps/ratings.yaml", 12, 13)


def errors_of(whens: list[str | None], **kwargs: Any) -> list[str]:
    routes = [routing.SpecRoute(f"r{i}", w, body("x"), PLACE) for i, w in enumerate(whens)]
    with pytest.raises(SpecErrors) as info:
        routing.compile_http(routes, **kwargs)
    return [e.format() for e in info.value.errors]


def test_parse_errors_of_every_route_are_reported_at_their_column() -> None:
    assert errors_of(['header "x" exact', 'uri prefix "/a" and', None]) == [
        "apps/ratings.yaml:12:29: error: in condition, column 17: expected the exact value "
        "(a double-quoted string), found the end of the condition",
        "apps/ratings.yaml:12:32: error: in condition, column 20: expected a predicate (header, "
        "query, uri, method, authority, scheme, port, source, gateway), 'not' or '(', found the "
        "end of the condition",
    ]


def test_two_uri_regexes_in_one_conjunction_are_refused_naming_them() -> None:
    [error] = errors_of(['uri regex "/a.*" and uri regex ".*b"', None])
    assert "`uri regex \"/a.*\"` and `uri regex \".*b\"` cannot both be required" in error
    assert error.startswith("apps/ratings.yaml:12:")


def test_gateway_with_a_source_predicate_is_refused() -> None:
    [error] = errors_of(['gateway "mesh" and source namespace "web"', None])
    assert "Istio ignores sourceLabels and sourceNamespace in a match that names gateways" in error
    assert error.startswith("apps/ratings.yaml:12:32:")  # at `source namespace`


def test_guards_without_a_catch_all_are_refused_with_a_hint() -> None:
    [error] = errors_of(['not method exact "POST"'])
    assert "`not method exact \"POST\"` needs guard routes" in error
    assert error.endswith("(hint: add a last route without `when`)")
    assert error.startswith("apps/ratings.yaml:12:17:")  # at `method`


def test_output_over_the_bound_is_refused_naming_route_and_bound() -> None:
    when = " or ".join(f'(header "x" exact "{i}" and not method exact "M{i}")' for i in range(8))
    [error] = errors_of([when, None], max_routes=10)
    assert "route 'r0': the compiled routes exceed the bound of 10 Envoy routes" in error


def test_each_route_refusal_is_reported_not_only_the_first() -> None:
    assert len(errors_of(['uri regex ".*a" and uri regex ".*b"', 'query "q" regex ".*a" and query "q" regex ".*b"',
                          None])) == 2


def test_parse_errors_and_refusals_of_different_routes_are_reported_together() -> None:
    errors = errors_of(['header "x" exakt "1"', 'uri regex ".*a" and uri regex ".*b"', None])
    assert [e.split(": error: ")[1][:30] for e in errors] == [
        "in condition, column 12: expec", "route 'r1': `uri regex \".*a\"` "]


def test_a_spec_route_named_like_a_guard_route_is_refused() -> None:
    routes = [routing.SpecRoute("a", 'not method exact "POST"', body("a"), PLACE),
              routing.SpecRoute("a-guard-1-default", 'header "x" present', body("x"), PLACE),
              routing.SpecRoute("default", None, body("default"))]
    with pytest.raises(SpecErrors, match="route name 'a-guard-1-default' is also the name of a generated guard route"):
        routing.compile_http(routes)


@pytest.mark.parametrize("host,service", [
    ("reviews.books.svc.cluster.local", ("reviews", "books")),
    ("reviews.books.svc.cluster.local.", ("reviews", "books")),  # the absolute form of the same name
    ("reviews.books.svc.corp.example", ("reviews", "books")),  # another domainSuffix
    ("reviews.books.svc", None),  # istiod completes names without dots only: another host
    ("reviews.books", None),
    ("reviews", None),
    ("reviews.svc.cluster.local", None),
    ("a.b.c.svc.cluster.local", None),
    ("reviews..svc.cluster.local", None),
    ("*.books.svc.cluster.local", None),
    ("api.example.com", None),
])
def test_a_kubernetes_service_host_is_read_one_way_everywhere(host: str, service: tuple[str, str] | None) -> None:
    """One reading of ``<name>.<namespace>.svc.<domain>`` serves the gateway-api target's
    backendRefs, ``explain``'s sidecar domains and the analysis (they disagreed on
    ``reviews.books.svc`` and on domains other than ``cluster.local``)."""
    from generator.render import explain
    from generator.routing.hosts import kube_service

    assert kube_service(host) == service
    domains = explain.sidecar_domains(host, "books")
    assert (len(domains) > 1) == (service is not None)
