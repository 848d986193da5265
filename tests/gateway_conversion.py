"""Istio's conversion of HTTPRoutes into the VirtualService routes a proxy gets, for the Envoy
harness (tests/envoy.py), after istio/istio ``pilot/pkg/config/kube/gateway/conversion.go``
(cited as ``conversion.go``, at the function that does each part).

Only what the generated cases use: path, method, header and query matches, weighted Service
backends, the header modifier, redirect and rewrite filters; GRPCRoute method and header
matches; a mesh (GAMMA) parent's port. The routes of one parent and hostname become one
VirtualService (``route_collections.go`` ``HTTPRouteCollection``, ``GRPCRouteCollection``:
"one VS per gateway+host", "for mesh routes, build one VS per namespace/port->host").
"""

from __future__ import annotations

from typing import Any

from generator.routing import httproute
from tests.envoy import GATEWAY_SEMANTICS


def _uri(path: dict[str, Any] | None) -> dict[str, Any] | None:
    """conversion.go ``createURIMatch``: Exact -> exact; PathPrefix -> prefix, a trailing ``/``
    trimmed unless the value is ``/``; RegularExpression -> regex."""
    kind = (path or {}).get("type") or "PathPrefix"
    value = str((path or {}).get("value") or "/")
    if kind == "Exact":
        return {"exact": value}
    if kind == "PathPrefix":
        return {"prefix": value if value == "/" else value.rstrip("/")}
    return {"regex": value}


def _matches(match: dict[str, Any]) -> dict[str, Any]:
    """conversion.go ``convertHTTPRoute`` -> ``createURIMatch``, ``createHeadersMatch``,
    ``createQueryParamsMatch``, ``createMethodMatch``: one Istio match block per HTTPRouteMatch."""
    block: dict[str, Any] = {"uri": _uri(match.get("path"))}
    headers = {str(h["name"]).lower(): ({"regex": h["value"]} if h.get("type") == "RegularExpression"
                                        else {"exact": h["value"]}) for h in match.get("headers") or []}
    if headers:
        block["headers"] = headers
    params = {str(q["name"]): ({"regex": q["value"]} if q.get("type") == "RegularExpression"
                               else {"exact": q["value"]}) for q in match.get("queryParams") or []}
    if params:
        block["queryParams"] = params
    if match.get("method"):
        block["method"] = {"exact": match["method"]}
    return block


def _grpc_matches(match: dict[str, Any]) -> dict[str, Any]:
    """conversion.go ``convertGRPCRoute`` -> ``createGRPCURIMatch``, ``createGRPCHeadersMatch``:
    a method match of type Exact with service and method is the exact path ``/S/M``, with the
    service alone the prefix ``/S/``; no method match, no ``uri`` (istiod's match then has no
    path, which ``getURIRank`` ranks -1)."""
    block: dict[str, Any] = {}
    method = match.get("method") or {}
    if method.get("type", "Exact") == "Exact":
        if method.get("service") and method.get("method"):
            block["uri"] = {"exact": f"/{method['service']}/{method['method']}"}
        elif method.get("service"):
            block["uri"] = {"prefix": f"/{method['service']}/"}
        elif method.get("method"):
            block["uri"] = {"regex": f"/[^/]+/{method['method']}"}
    elif method:  # RegularExpression
        block["uri"] = {"regex": f"/{method.get('service') or '[^/]+'}/{method.get('method') or '.+'}"}
    headers = {str(h["name"]).lower(): ({"regex": h["value"]} if h.get("type") == "RegularExpression"
                                        else {"exact": h["value"]}) for h in match.get("headers") or []}
    if headers:
        block["headers"] = headers
    return block


def _backend_problem(objects: httproute.Objects, kind: str, route_ns: str, ref: dict[str, Any],
                     enforce_grant: bool) -> str | None:
    """conversion.go ``buildDestination``: a reference to another namespace needs a
    ReferenceGrant from the route's own kind (``gatewaycommon/references.go``
    ``BackendAllowed`` keys grants by ``From{Kind, Namespace}``), and only where
    ``enforceRefGrant`` (a Gateway parent: ``convertHTTPRoute(..., !mesh)``); a Service that
    does not exist is an invalid backend."""
    ns, name = ref.get("namespace") or route_ns, str(ref.get("name"))
    if enforce_grant and ns != route_ns:
        granted = any(
            httproute.meta(g)[0] == ns
            and any(f.get("group") == httproute.GROUP and f.get("kind") == kind and f.get("namespace") == route_ns
                    for f in (g.get("spec") or {}).get("from") or [])
            and any((t.get("group") or "") == "" and t.get("kind") == "Service" and t.get("name") in (None, "", name)
                    for t in (g.get("spec") or {}).get("to") or [])
            for g in objects.grants)
        if not granted:
            return f"backendRef {name}/{ns} not accessible to a {kind} in namespace {route_ns!r}"
    if (ns, name) not in objects.services:
        return f"Service {ns}/{name} does not exist"
    return None


def _filters(rule: dict[str, Any], out: dict[str, Any]) -> None:
    """conversion.go ``convertHTTPRoute`` filters: ``createHeadersFilter`` (set/add/remove),
    ``createRedirectFilter`` (scheme, authority, port, uri/redirectCode), ``createRewriteFilter``
    (uri, authority)."""
    for f in rule.get("filters") or []:
        kind = f.get("type")
        if kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
            mod = f.get("requestHeaderModifier" if kind == "RequestHeaderModifier" else "responseHeaderModifier") or {}
            ops: dict[str, Any] = {}
            for op in ("set", "add"):
                if mod.get(op):
                    ops[op] = {h["name"]: h["value"] for h in mod[op]}
            if mod.get("remove"):
                ops["remove"] = list(mod["remove"])
            out.setdefault("headers", {})["request" if kind == "RequestHeaderModifier" else "response"] = ops
        elif kind == "RequestRedirect":
            r = f["requestRedirect"]
            redirect: dict[str, Any] = {"redirectCode": int(r.get("statusCode") or 302)}
            if r.get("scheme"):
                redirect["scheme"] = r["scheme"]
            if r.get("hostname"):
                redirect["authority"] = r["hostname"]
            if r.get("port"):
                redirect["port"] = int(r["port"])
            if (r.get("path") or {}).get("type") == "ReplaceFullPath":
                redirect["uri"] = r["path"]["replaceFullPath"]
            out["redirect"] = redirect
        elif kind == "URLRewrite":
            r = f["urlRewrite"]
            rewrite: dict[str, Any] = {}
            if r.get("hostname"):
                rewrite["authority"] = r["hostname"]
            if (r.get("path") or {}).get("type") == "ReplacePrefixMatch":
                rewrite["uri"] = r["path"]["replacePrefixMatch"]
            elif (r.get("path") or {}).get("type") == "ReplaceFullPath":
                rewrite["uriRegexRewrite"] = {"match": "/.*", "rewrite": r["path"]["replaceFullPath"]}
            out["rewrite"] = rewrite


def convert(routes: list[dict[str, Any]], objects: httproute.Objects, *,
            mesh_port: int | None = None, mesh: bool = False) -> list[dict[str, Any]]:
    """The ``spec.http`` istiod builds for one parent and hostname from the HTTPRoutes (and
    GRPCRoutes) attached to it: one route per match (``route_collections.go``: "split the rule
    to make sure each rule has up to one match", then conversion.go ``convertHTTPRoute`` /
    ``convertGRPCRoute``), in ``sortHTTPRoutes`` order (Exact, then the longest prefix,
    method, most headers, most query parameters; then route age and name, then rule order).
    Backends that do not resolve become a 500 ``directResponse`` (conversion.go
    ``buildHTTPDestination``: ``invalidBackendErr``).

    ``mesh``: the parent is a Service (GAMMA), where ReferenceGrants are not enforced;
    ``mesh_port``: that parentRef's ``port``, which istiod adds to every match
    (``route_collections.go`` ``augmentPortMatch``), so the routes apply on that port only.
    """
    def istio_rank(item: tuple[dict[str, Any], int, int]) -> tuple[Any, ...]:
        """conversion.go ``sortHTTPRoutes`` (``getURIRank``: exact 3, prefix 2, regex 1, no
        path -1; ``getURILength`` of the converted match), a stable sort."""
        route, i, j = item
        block = blocks_of(route, i, j)
        uri = block.get("uri")
        rank = -1 if uri is None else 3 if "exact" in uri else 2 if "prefix" in uri else 1
        return (-rank, -len(next(iter(uri.values()))) if uri else 0, "method" not in block,
                -len(block.get("headers") or {}), -len(block.get("queryParams") or {}))

    def blocks_of(route: dict[str, Any], i: int, j: int) -> dict[str, Any]:
        rule = route["spec"]["rules"][i]
        if route.get("kind") == "GRPCRoute":
            return _grpc_matches(list(rule.get("matches") or [{}])[j])
        return _matches(httproute.rule_matches(rule)[j])

    def matches_of(route: dict[str, Any], rule: dict[str, Any]) -> list[dict[str, Any]]:
        if route.get("kind") == "GRPCRoute":
            return list(rule.get("matches") or [{}])
        return httproute.rule_matches(rule)

    # conversion.go: routes oldest first, then by namespace/name; rules and matches in order
    ordered = sorted(routes, key=lambda r: (str((r.get("metadata") or {}).get("creationTimestamp") or ""),
                                            "/".join(httproute.meta(r))))
    items = [(r, i, j) for r in ordered for i, rule in enumerate(r["spec"].get("rules") or [])
             for j, _ in enumerate(matches_of(r, rule))]
    out = []
    for route, i, j in sorted(items, key=istio_rank):
        ns, name = httproute.meta(route)
        kind = str(route.get("kind") or "HTTPRoute")
        rule = route["spec"]["rules"][i]
        block = blocks_of(route, i, j)
        if mesh_port is not None:  # route_collections.go augmentPortMatch
            block["port"] = mesh_port
        http: dict[str, Any] = {"name": rule.get("name") or f"{ns}.{name}.{i}", "match": [block],
                                GATEWAY_SEMANTICS: True}
        _filters(rule, http)
        if "redirect" not in http:
            dests = []
            for ref in rule.get("backendRefs") or []:
                if (_backend_problem(objects, kind, ns, ref, not mesh) is None and int(ref.get("weight", 1))):
                    dests.append({"destination": {"host": f"{ref['name']}.{ref.get('namespace') or ns}.svc.cluster.local",
                                                  "port": {"number": int(ref.get("port") or 80)}},
                                  "weight": int(ref.get("weight", 1))})
            if dests:
                http["route"] = dests
            else:
                http["directResponse"] = {"status": 500}
        out.append(http)
    return out
