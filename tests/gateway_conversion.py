"""Istio's conversion of HTTPRoutes into the VirtualService routes a proxy gets, for the Envoy
harness (tests/envoy.py), after istio/istio ``pilot/pkg/config/kube/gateway/conversion.go``
(cited as ``conversion.go``, at the function that does each part).

Only what the generated cases use: path, method, header and query matches, weighted Service
backends, the header modifier, redirect and rewrite filters.
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


def convert(routes: list[dict[str, Any]], objects: httproute.Objects) -> list[dict[str, Any]]:
    """The ``spec.http`` istiod builds for one hostname from the HTTPRoutes attached to it: one
    route per HTTPRouteMatch (conversion.go ``convertHTTPRoute``, ``buildHTTPVirtualServices``),
    in ``sortHTTPRoutes`` order (Exact, then the longest prefix, method, most headers, most query
    parameters; then route age and name, then rule order). Backends that do not resolve become a
    500 ``directResponse`` (conversion.go ``buildHTTPDestination``: ``invalidBackendErr``)."""
    def istio_rank(item: tuple[dict[str, Any], int, int]) -> tuple[Any, ...]:
        """conversion.go ``sortHTTPRoutes`` (``getURIRank``: exact 3, prefix 2, regex 1;
        ``getURILength`` of the converted match), a stable sort."""
        route, i, j = item
        block = _matches(httproute.rule_matches(route["spec"]["rules"][i])[j])
        uri = block["uri"]
        rank = 3 if "exact" in uri else 2 if "prefix" in uri else 1
        return (-rank, -len(next(iter(uri.values()))), "method" not in block, -len(block.get("headers") or {}),
                -len(block.get("queryParams") or {}))

    # conversion.go: routes oldest first, then by namespace/name; rules and matches in order
    ordered = sorted(routes, key=lambda r: (str((r.get("metadata") or {}).get("creationTimestamp") or ""),
                                            "/".join(httproute.meta(r))))
    items = [(r, i, j) for r in ordered for i, rule in enumerate(r["spec"].get("rules") or [])
             for j, _ in enumerate(httproute.rule_matches(rule))]
    out = []
    for route, i, j in sorted(items, key=istio_rank):
        ns, name = httproute.meta(route)
        rule = route["spec"]["rules"][i]
        match = httproute.rule_matches(rule)[j]
        http: dict[str, Any] = {"name": f"{ns}.{name}.{i}.{j}", "match": [_matches(match)], GATEWAY_SEMANTICS: True}
        _filters(rule, http)
        if "redirect" not in http:
            dests = []
            for ref in rule.get("backendRefs") or []:
                if httproute.backend_problem(objects, ns, ref) is None and int(ref.get("weight", 1)):
                    dests.append({"destination": {"host": f"{ref['name']}.{ref.get('namespace') or ns}.svc.cluster.local",
                                                  "port": {"number": int(ref.get("port") or 80)}},
                                  "weight": int(ref.get("weight", 1))})
            if dests:
                http["route"] = dests
            else:
                http["directResponse"] = {"status": 500}
        out.append(http)
    return out
