"""An independent model of which HTTPRoute rule a request takes (Gateway API precedence).

Written from the Gateway API's own words, not from meshgen's compiler: kubernetes-sigs/gateway-api
``apis/v1/httproute_types.go`` (``HTTPRouteRule``: "Proxy or Load Balancer routing configuration
generated from HTTPRoutes MUST prioritize matches based on the following criteria, continuing on
ties ... 'Exact' path match, 'Prefix' path match with largest number of characters, Method
match, Largest number of header matches, Largest number of query param matches"; then "the
first matching rule (in list order)") and ``HTTPPathMatch`` (``PathPrefix``: element-wise,
a trailing ``/`` ignored), with Istio's ranking of ``RegularExpression`` paths below prefixes,
by the pattern's length (istio/istio ``pilot/pkg/config/kube/gateway/conversion.go``
``sortHTTPRoutes``). A match without ``path`` is ``PathPrefix /`` (the CRD's default).
Header names compare case-insensitively, values and query parameters exactly; regexes are RE2
full matches (Envoy ``safe_regex``).
"""

from __future__ import annotations

from typing import Any

import re2


def _path_ok(path: dict[str, str], uri: str) -> bool:
    kind, value = path["type"], path["value"]
    if kind == "Exact":
        return uri == value
    if kind == "PathPrefix":
        base = value.rstrip("/")
        segments, request = [s for s in base.split("/") if s], uri.split("/")[1:]
        return request[:len(segments)] == segments
    return re2.fullmatch(value, uri) is not None


def _value_ok(m: dict[str, str], value: str | None) -> bool:
    if value is None:
        return False
    if m.get("type", "Exact") == "Exact":
        return value == m["value"]
    return re2.fullmatch(m["value"], value) is not None


def matches(match: dict[str, Any], uri: str, method: str, headers: dict[str, str], query: dict[str, str]) -> bool:
    """Whether one ``HTTPRouteMatch`` accepts the request (``headers`` keys lower case)."""
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    if not _path_ok(path, uri):
        return False
    if match.get("method") and match["method"] != method:
        return False
    if not all(_value_ok(h, headers.get(h["name"].lower())) for h in match.get("headers") or []):
        return False
    return all(_value_ok(q, query.get(q["name"])) for q in match.get("queryParams") or [])


def _key(match: dict[str, Any]) -> tuple:
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind = {"Exact": 2, "PathPrefix": 1, "RegularExpression": 0}[path["type"]]
    return (kind, len(path["value"]), bool(match.get("method")), len(match.get("headers") or []),
            len(match.get("queryParams") or []))


def chosen_rule(rules: list[dict[str, Any]], uri: str, method: str = "GET", headers: dict[str, str] | None = None,
                query: dict[str, str] | None = None) -> int | None:
    """Index of the rule the request takes, ``None`` when none matches (404)."""
    headers, query = headers or {}, query or {}
    best: tuple | None = None
    winner = None
    for index, rule in enumerate(rules):
        for match in rule.get("matches") or [{}]:
            if matches(match, uri, method, headers, query):
                key = _key(match)
                if best is None or key > best:  # strictly better only: a tie keeps list order
                    best, winner = key, index
    return winner
