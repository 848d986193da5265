"""What Envoy's CORS filter answers for a request on a route with a CORS policy (pure).

Istio puts Envoy's CORS filter (``envoy.filters.http.cors``) in every HTTP filter chain, and a
route's CORS policy is the filter's per-route configuration: a VirtualService's ``corsPolicy``
(Istio ``pilot/pkg/networking/core/route/route.go`` ``TranslateCORSPolicy``), or an HTTPRoute's
``CORS`` filter, which istiod first turns into a ``corsPolicy``
(``pilot/pkg/config/kube/gateway/conversion.go`` ``createCorsFilter``). The filter runs after
the route is chosen and before the request is forwarded, on routes that forward only (a redirect
or a direct response has no route entry, and the filter lets the request be)
(Envoy ``source/extensions/filters/http/cors/cors_filter.cc``; docs:
https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/cors_filter):

- a request without an ``Origin`` header is none of its business;
- a *preflight* -- ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method`` -- from an
  allowed origin is answered by the filter itself, status 200, with
  ``access-control-allow-origin`` (the request's origin), ``-allow-credentials``,
  ``-allow-methods`` (``*``: the method asked for), ``-allow-headers`` (``*``: the headers asked
  for), ``-max-age``, and, as the answer passes the filter's own response side,
  ``-expose-headers``. From an origin not allowed, the preflight is forwarded to the backend
  (``forward_not_matching_preflights``, Istio's default ``unmatchedPreflights: FORWARD``) or,
  with ``IGNORE`` (what istiod sets for an HTTPRoute), answered 200 without
  ``access-control-allow-origin``;
- any other request with an allowed ``Origin`` is forwarded, and the response gets
  ``access-control-allow-origin`` (the request's origin), ``-allow-credentials`` and
  ``-expose-headers``; from an origin not allowed, the response is left as it is.

Origins are matched with Istio's ``StringMatch`` (``exact``, ``prefix``, ``regex`` -- RE2, the
whole value), and a matcher that matches the text ``*`` allows every origin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import re2

from generator.routing.request import Request

#: Response header names the filter sets (lower-case, as HTTP/2 sends them).
ALLOW_ORIGIN = "access-control-allow-origin"
ALLOW_CREDENTIALS = "access-control-allow-credentials"
ALLOW_METHODS = "access-control-allow-methods"
ALLOW_HEADERS = "access-control-allow-headers"
EXPOSE_HEADERS = "access-control-expose-headers"
MAX_AGE = "access-control-max-age"
#: Origins the HTTPRoute ``*`` stands for (conversion.go: a scheme, ``://``, a host and port).
ANY_ORIGIN = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+$"


def from_httproute(cors: dict[str, Any]) -> dict[str, Any]:
    """The ``corsPolicy`` istiod makes of an HTTPRoute ``CORS`` filter's ``cors`` object
    (conversion.go ``createCorsFilter``): an origin ``*`` is a regex of any origin, one without
    ``*`` an exact match, one ending in its only ``*`` a prefix, any other a regex (``*``: ``.*``);
    ``allowCredentials`` only when true; ``maxAge`` in seconds when above 0;
    ``unmatchedPreflights: IGNORE``."""
    out: dict[str, Any] = {}
    origins = []
    for origin in cors.get("allowOrigins") or []:
        text = str(origin)
        if not text:
            continue
        if text == "*":
            origins.append({"regex": ANY_ORIGIN})
        elif "*" not in text:
            origins.append({"exact": text})
        elif text.count("*") == 1 and text.endswith("*"):
            origins.append({"prefix": text[:-1]})
        else:
            origins.append({"regex": "^" + re.escape(text).replace(r"\*", ".*") + "$"})
    if origins:
        out["allowOrigins"] = origins
    if cors.get("allowCredentials"):
        out["allowCredentials"] = True
    for key in ("allowMethods", "allowHeaders", "exposeHeaders"):
        if cors.get(key):
            out[key] = [str(v) for v in cors[key]]
    if int(cors.get("maxAge") or 0) > 0:
        out["maxAge"] = f"{int(cors['maxAge'])}s"
    out["unmatchedPreflights"] = "IGNORE"
    return out


def _seconds(duration: Any) -> str:
    """A ``google.protobuf.Duration`` as Istio writes it (``3600s``, ``1h``) in whole seconds."""
    text = str(duration)
    total = 0.0
    for number, unit in re.findall(r"([0-9.]+)(ms|h|m|s)", text):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return str(int(total))


def _matches(matcher: dict[str, Any], value: str) -> bool:
    if "exact" in matcher:
        return value == str(matcher["exact"])
    if "prefix" in matcher:
        return value.startswith(str(matcher["prefix"]))
    if "regex" in matcher:
        return re2.compile(str(matcher["regex"])).fullmatch(value) is not None
    return False


def origin_allowed(policy: dict[str, Any], origin: str) -> bool:
    """Whether ``origin`` is allowed (cors_filter.cc ``isOriginAllowed``); ``allowOrigin``, the
    deprecated list of exact origins, when ``allowOrigins`` is not set (route.go)."""
    matchers = policy.get("allowOrigins")
    if matchers is None:
        matchers = [{"exact": o} for o in policy.get("allowOrigin") or []]
    return any(_matches(m, "*") or _matches(m, origin) for m in matchers)


@dataclass(frozen=True)
class Answer:
    """What the CORS filter does with one request.

    Attributes:
        preflight: the request is a preflight (``OPTIONS`` with ``Origin`` and
            ``Access-Control-Request-Method``).
        origin_allowed: the ``Origin`` is one the policy allows.
        answered: the filter answers the request itself (status 200); it is not forwarded.
        headers: the response headers the filter sets, lower-case name -> value.
    """

    preflight: bool
    origin_allowed: bool
    answered: bool
    headers: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """``{"preflight", "originAllowed", "answered", "responseHeaders"}``."""
        return {"preflight": self.preflight, "originAllowed": self.origin_allowed, "answered": self.answered,
                "responseHeaders": dict(self.headers)}


def answer(policy: dict[str, Any], request: Request) -> Answer | None:
    """What the CORS filter does with ``request`` on a route whose ``corsPolicy`` is ``policy``
    (Istio's fields), or ``None`` when the request has no ``Origin`` (the filter lets it be).
    See the module docstring."""
    origin = request.headers.get("origin") or ""
    if not origin:
        return None
    allowed = origin_allowed(policy, origin)
    credentials = bool(policy.get("allowCredentials"))
    expose = ",".join(str(h) for h in policy.get("exposeHeaders") or [])
    asked_method = request.headers.get("access-control-request-method") or ""
    preflight = request.method == "OPTIONS" and bool(asked_method)
    forward = str(policy.get("unmatchedPreflights") or "FORWARD") != "IGNORE"
    headers: dict[str, str] = {}
    if preflight and (allowed or not forward):  # cors_filter.cc decodeHeaders: the filter answers
        if allowed:
            headers[ALLOW_ORIGIN] = origin
        if credentials:
            headers[ALLOW_CREDENTIALS] = "true"
        methods = ",".join(str(m) for m in policy.get("allowMethods") or [])
        if methods:
            headers[ALLOW_METHODS] = asked_method if methods == "*" else methods
        allow = ",".join(str(h) for h in policy.get("allowHeaders") or [])
        if allow:
            headers[ALLOW_HEADERS] = request.headers.get("access-control-request-headers", "") if allow == "*" else allow
        if policy.get("maxAge") is not None:
            headers[MAX_AGE] = _seconds(policy["maxAge"])
        answered = True
    else:
        answered = False
    if allowed:  # cors_filter.cc encodeHeaders, on the filter's own answer too
        headers[ALLOW_ORIGIN] = origin
        if credentials:
            headers[ALLOW_CREDENTIALS] = "true"
        if expose:
            headers[EXPOSE_HEADERS] = expose
    return Answer(preflight, allowed, answered, headers)
