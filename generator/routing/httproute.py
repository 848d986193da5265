"""Where a request goes among Gateway API objects: an independent model of HTTPRoute matching.

Pure: a list of parsed objects (Gateway, HTTPRoute, Service, ReferenceGrant, Namespace) and a
:class:`generator.routing.request.Request` in, an :class:`Answer` out. It is the meaning the
Gateway API defines, written from its sources, not from meshgen's compiler, so that tests can
hold the compiler (and Envoy) against it:

- Attachment: a route attaches to a Gateway listener by ``parentRefs`` (``sectionName``,
  ``port``), if the listener's ``allowedRoutes`` admit the route's namespace and kind, and its
  ``hostnames`` intersect the listener's ``hostname`` (``apis/v1/gateway_types.go``,
  ``apis/v1/httproute_types.go`` ``Hostnames``). For a Service parent (GAMMA, GEP-1426 and
  GEP-1294) producer routes (the Service's namespace) apply to every caller, and consumer routes
  (another namespace) instead of them to callers in that namespace.
- Host: the most specific matching hostname wins across routes (an exact name over a wildcard,
  the longer over the shorter), as istiod builds one Envoy virtual host per hostname.
- Precedence across rules and routes (``apis/v1/httproute_types.go`` ``HTTPRouteRule``; Istio
  sorts converted routes so in ``pilot/pkg/config/kube/gateway/conversion.go``
  ``sortHTTPRoutes``): an Exact path, then the longest prefix (regular expressions after both),
  then a method match, then the most header matches, then the most query matches; then the oldest
  route (``creationTimestamp``), then ``namespace/name`` alphabetically, then rule and match order.
- Matching: ``PathPrefix`` by whole segments (``/foo`` matches ``/foo`` and ``/foo/bar``, not
  ``/foobar``); header names case-insensitive; regular expressions RE2, whole value.
- Outcome: no rule matches: 404; a rule with no ``backendRefs`` and no redirect, or whose
  backends are all invalid (a Service that does not exist, an unknown kind, another namespace
  without a ReferenceGrant): 500 (``HTTPRouteRule.BackendRefs``: "requests that would have been
  sent to that backend MUST receive a 500"). A ``CORS`` filter is the route's CORS policy for
  Envoy's CORS filter (:mod:`generator.routing.cors`), which answers a preflight from an
  allowed origin itself (200) and adds ``access-control-*`` headers to other responses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

from generator.routing import cors
from generator.routing.request import Request

GROUP = "gateway.networking.k8s.io"
#: Istio's API group: a parentRef ``{group: networking.istio.io, kind: ServiceEntry}`` binds a mesh
#: route to a ServiceEntry's hosts; a backendRef ``kind: Hostname`` names a host of its registry.
ISTIO_GROUP = "networking.istio.io"
#: Answer outcomes.
ROUTE = "route"
NO_MATCH = "no-match"
#: A Service parent with no route attached: the request goes to the Service itself.
DEFAULT = "default"
#: Well-known ports of schemes (a redirect's Location leaves them out).
WELL_KNOWN = {"http": 80, "https": 443}


class ModelError(ValueError):
    """The question cannot be answered from the objects (e.g. the Gateway named is not among them)."""


def meta(obj: dict[str, Any]) -> tuple[str, str]:
    """``(namespace, name)`` of an object; a missing namespace is ``default``, as kubectl applies it."""
    m = obj.get("metadata") or {}
    return str(m.get("namespace") or "default"), str(m.get("name") or "")


@dataclass
class Objects:
    """The objects indexed by kind: ``gateways``/``services``/``service_entries`` by ``(namespace, name)``.

    ``routes`` are HTTPRoutes in input order; ``grants`` ReferenceGrants; ``namespaces`` the
    labels of Namespace objects (for ``allowedRoutes.namespaces.from: Selector``);
    ``virtual_services`` Istio VirtualServices.
    """

    gateways: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    service_entries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    routes: list[dict[str, Any]] = field(default_factory=list)
    grants: list[dict[str, Any]] = field(default_factory=list)
    namespaces: dict[str, dict[str, str]] = field(default_factory=dict)
    virtual_services: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, docs: list[dict[str, Any]]) -> "Objects":
        """Index parsed YAML documents; other kinds are ignored."""
        out = cls()
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            kind, api = doc.get("kind"), str(doc.get("apiVersion") or "")
            if kind == "Gateway" and api.startswith(GROUP):
                out.gateways[meta(doc)] = doc
            elif kind == "HTTPRoute":
                out.routes.append(doc)
            elif kind == "Service" and api == "v1":
                out.services[meta(doc)] = doc
            elif kind == "ServiceEntry" and api.startswith(ISTIO_GROUP):
                out.service_entries[meta(doc)] = doc
            elif kind == "ReferenceGrant":
                out.grants.append(doc)
            elif kind == "Namespace":
                out.namespaces[str((doc.get("metadata") or {}).get("name"))] = \
                    dict((doc.get("metadata") or {}).get("labels") or {})
            elif kind == "VirtualService":
                out.virtual_services.append(doc)
        return out


# --- hostnames --------------------------------------------------------------------------------

def host_matches(pattern: str, host: str) -> bool:
    """``*.example.com`` matches one or more labels before ``.example.com``; else exact (case-insensitive)."""
    pattern, host = pattern.lower(), host.lower()
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def intersect(route_host: str, listener_host: str | None) -> str | None:
    """The hostname a route hostname serves on a listener (``httproute_types.go`` ``Hostnames``), or ``None``."""
    if not listener_host:
        return route_host
    if host_matches(listener_host, route_host) or route_host.lower() == listener_host.lower():
        return route_host
    if host_matches(route_host, listener_host):
        return listener_host
    return None


def _specificity(hostname: str) -> tuple[int, int]:
    """Sort key: exact names first, then the longest (Gateway API precedence, Envoy's domain order)."""
    return (1 if hostname.startswith("*") else 0, -len(hostname))


# --- attachment -------------------------------------------------------------------------------

def parent_refs(route: dict[str, Any]) -> list[dict[str, Any]]:
    """The route's ``parentRefs`` with defaults filled: group, kind, namespace."""
    ns, _ = meta(route)
    out = []
    for ref in (route.get("spec") or {}).get("parentRefs") or []:
        kind = ref.get("kind") or "Gateway"
        group = ref.get("group", GROUP if kind == "Gateway" else "")
        out.append({**ref, "kind": kind, "group": group if group is not None else "",
                    "namespace": ref.get("namespace") or ns})
    return out


def _allowed(listener: dict[str, Any], gw_ns: str, route_ns: str, objects: Objects) -> bool:
    allowed = listener.get("allowedRoutes") or {}
    kinds = allowed.get("kinds")
    if kinds and not any(k.get("kind") == "HTTPRoute" and k.get("group", GROUP) == GROUP for k in kinds):
        return False
    if not kinds and listener.get("protocol") not in ("HTTP", "HTTPS", None):
        return False
    ns_from = ((allowed.get("namespaces") or {}).get("from")) or "Same"
    if ns_from == "All":
        return True
    if ns_from == "Same":
        return route_ns == gw_ns
    selector = ((allowed.get("namespaces") or {}).get("selector") or {}).get("matchLabels") or {}
    labels = objects.namespaces.get(route_ns, {"kubernetes.io/metadata.name": route_ns})
    labels = {"kubernetes.io/metadata.name": route_ns, **labels}
    return all(labels.get(k) == v for k, v in selector.items())


def gateway_attachments(objects: Objects, gateway: tuple[str, str], port: int | None
                        ) -> list[tuple[dict[str, Any], dict[str, Any], list[str]]]:
    """``(route, listener, hostnames)`` for every HTTPRoute attached to a listener of ``gateway`` on ``port``
    (every port when ``None``); hostnames are the intersection (``["*"]``: any host).

    Raises:
        ModelError: the Gateway is not among the objects.
    """
    gw = objects.gateways.get(gateway)
    if gw is None:
        raise ModelError(f"no Gateway {gateway[0]}/{gateway[1]} among the objects")
    out = []
    for listener in (gw.get("spec") or {}).get("listeners") or []:
        if port is not None and int(listener.get("port") or 0) != port:
            continue
        for route in objects.routes:
            route_ns, _ = meta(route)
            refs = [r for r in parent_refs(route) if r["kind"] == "Gateway" and r["group"] == GROUP
                    and (r["namespace"], r.get("name")) == gateway
                    and r.get("sectionName") in (None, listener.get("name"))
                    and r.get("port") in (None, listener.get("port"))]
            if not refs or not _allowed(listener, gateway[0], route_ns, objects):
                continue
            names = (route.get("spec") or {}).get("hostnames") or []
            lh = listener.get("hostname")
            if names:
                hosts = [h for h in (intersect(n, lh) for n in names) if h]
                if not hosts:
                    continue
            else:
                hosts = [lh] if lh else ["*"]
            out.append((route, listener, hosts))
    return out


def is_service_ref(ref: dict[str, Any]) -> bool:
    """Whether a normalised parentRef (:func:`parent_refs`) names a Service (GAMMA, GEP-1426)."""
    return ref["kind"] == "Service" and ref["group"] in ("", "core")


def service_routes(objects: Objects, service: tuple[str, str], port: int | None,
                   source_namespace: str | None) -> list[dict[str, Any]]:
    """HTTPRoutes that apply to a call to ``service`` from ``source_namespace`` (GAMMA: consumer
    routes in the caller's namespace replace the producer routes, GEP-1294)."""
    attached = []
    for route in objects.routes:
        refs = [r for r in parent_refs(route) if is_service_ref(r)
                and (r["namespace"], r.get("name")) == service and (port is None or r.get("port") in (None, port))]
        if refs:
            attached.append(route)
    consumer = [r for r in attached if meta(r)[0] == source_namespace and source_namespace != service[0]]
    return consumer or [r for r in attached if meta(r)[0] == service[0]]


# --- matching and precedence ------------------------------------------------------------------

def rule_matches(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """A rule's matches; none is one match of ``PathPrefix /`` (the CRD's default)."""
    return list(rule.get("matches") or [{}]) or [{}]


def _path(match: dict[str, Any]) -> tuple[str, str]:
    p = match.get("path") or {}
    return str(p.get("type") or "PathPrefix"), str(p.get("value") if p.get("value") is not None else "/")


_RANK = {"Exact": 3, "PathPrefix": 2, "RegularExpression": 1}


def precedence(route: dict[str, Any], rule_index: int, match_index: int) -> tuple[Any, ...]:
    """Sort key of one match (smaller first): see the module docstring."""
    match = rule_matches(((route.get("spec") or {}).get("rules") or [])[rule_index])[match_index]
    kind, value = _path(match)
    if kind == "PathPrefix":  # "a trailing / is ignored": /a/ and /a are one prefix
        value = value.rstrip("/") or "/"
    ns, name = meta(route)
    created = str((route.get("metadata") or {}).get("creationTimestamp") or "")
    return (-_RANK.get(kind, 0), -len(value), match.get("method") is None, -len(match.get("headers") or []),
            -len(match.get("queryParams") or []), created, f"{ns}/{name}", rule_index, match_index)


def prefix_matches(prefix: str, path: str) -> bool:
    """``PathPrefix`` by whole segments; a trailing ``/`` of the prefix is ignored."""
    prefix = prefix.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _value_matches(m: dict[str, Any], value: str | None) -> bool:
    if value is None:
        return False
    if (m.get("type") or "Exact") == "RegularExpression":
        return re2.compile(str(m.get("value"))).fullmatch(value) is not None
    return value == m.get("value")


def match_matches(match: dict[str, Any], request: Request) -> bool:
    """Whether one ``HTTPRouteMatch`` matches the request (every condition)."""
    kind, value = _path(match)
    path = request.uri
    if kind == "Exact" and path != value:
        return False
    if kind == "PathPrefix" and not prefix_matches(value, path):
        return False
    if kind == "RegularExpression" and re2.compile(value).fullmatch(path) is None:
        return False
    if match.get("method") and match["method"] != request.method:
        return False
    for h in match.get("headers") or []:
        if not _value_matches(h, request.headers.get(str(h.get("name")).lower())):
            return False
    for q in match.get("queryParams") or []:
        if not _value_matches(q, request.query.get(str(q.get("name")))):
            return False
    return True


# --- answer -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """Where a request goes.

    Attributes:
        outcome: :data:`ROUTE`, :data:`NO_MATCH` (404) or :data:`DEFAULT` (a Service with no route).
        route: ``namespace/name`` of the HTTPRoute taken, or ``None``.
        rule: index of the rule taken in its route; ``rule_name`` its ``name`` if any.
        backends: ``"namespace/name": weight`` of the valid backends (weights as written, default 1).
        invalid: ``"namespace/name": reason`` of backends that answer 500.
        status: what the proxy answers by itself (404, 500, a redirect's code, 200 for a CORS
            preflight the CORS filter answers) or ``None``.
        details: ``redirect`` (with ``location``), ``rewrite``, ``headers`` (``request``/``response``
            ``set``/``add``/``remove``), ``mirror``, ``corsPolicy`` (the Istio ``corsPolicy`` istiod
            makes of a ``CORS`` filter) and ``cors`` (what Envoy's CORS filter does with this
            request: :meth:`generator.routing.cors.Answer.as_json`), and ``forwarded`` (path and
            host the backend receives, request headers after the filters).
    """

    outcome: str
    route: str | None = None
    rule: int | None = None
    rule_name: str | None = None
    backends: dict[str, int] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    status: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """``{"route", "rule", "backends", "status", "outcome", ...details}`` (JSON types only)."""
        out: dict[str, Any] = {"route": self.route, "rule": self.rule, "backends": self.backends,
                               "status": self.status, "outcome": self.outcome}
        if self.rule_name:
            out["ruleName"] = self.rule_name
        if self.invalid:
            out["invalidBackends"] = self.invalid
        out.update(self.details)
        return out


def _granted(objects: Objects, from_ns: str, to_ns: str, to_kind: str, to_name: str, to_group: str = "",
             from_kind: str = "HTTPRoute") -> bool:
    """A ReferenceGrant in ``to_ns`` lets routes of kind ``from_kind`` of ``from_ns`` refer to the object
    (``referencegrant_types.go``)."""
    for grant in objects.grants:
        if meta(grant)[0] != to_ns:
            continue
        spec = grant.get("spec") or {}
        if not any(f.get("group") == GROUP and f.get("kind") == from_kind and f.get("namespace") == from_ns
                   for f in spec.get("from") or []):
            continue
        if any((t.get("group") or "") == to_group and t.get("kind") == to_kind and t.get("name") in (None, "", to_name)
               for t in spec.get("to") or []):
            return True
    return False


def backend_problem(objects: Objects, route_ns: str, ref: dict[str, Any]) -> str | None:
    """Why a ``backendRef`` answers 500, or ``None`` when it is valid."""
    group, kind = ref.get("group") or "", ref.get("kind") or "Service"
    ns, name = ref.get("namespace") or route_ns, str(ref.get("name"))
    if group not in ("", "core") or kind != "Service":
        return f"unsupported backend kind {kind!r} (group {group!r})"
    if ns != route_ns and not _granted(objects, route_ns, ns, "Service", name):
        return f"no ReferenceGrant in namespace {ns} lets HTTPRoutes of {route_ns} refer to Service {name}"
    if (ns, name) not in objects.services:
        return f"Service {ns}/{name} does not exist"
    return None


def _replace_path(mod: dict[str, Any], path: str, match: dict[str, Any]) -> str:
    if mod.get("type") == "ReplaceFullPath":
        return str(mod.get("replaceFullPath"))
    kind, prefix = _path(match)
    rest = path[len(prefix.rstrip("/")):] if kind == "PathPrefix" else ""
    new = str(mod.get("replacePrefixMatch") or "").rstrip("/") + rest
    return new if new.startswith("/") else "/" + new


def _headers(mod: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op in ("set", "add"):
        if mod.get(op):
            out[op] = {str(h["name"]): str(h["value"]) for h in mod[op]}
    if mod.get("remove"):
        out["remove"] = [str(n) for n in mod["remove"]]
    return out


def apply_headers(headers: dict[str, str], mod: dict[str, Any]) -> dict[str, str]:
    """Request headers after a ``RequestHeaderModifier`` (names lower-case; ``add`` appends with ``,``)."""
    out = dict(headers)
    for name, value in (mod.get("set") or {}).items():
        out[name.lower()] = value
    for name, value in (mod.get("add") or {}).items():
        out[name.lower()] = f"{out[name.lower()]},{value}" if name.lower() in out else value
    for name in mod.get("remove") or []:
        out.pop(name.lower(), None)
    return out


def _apply_filters(filters: list[dict[str, Any]], request: Request, match: dict[str, Any],
                   listener_port: int, details: dict[str, Any]) -> int | None:
    status = None
    host = request.authority.rpartition(":")[0] if ":" in request.authority else request.authority
    forwarded = {"path": request.uri, "host": host, "headers": dict(request.headers)}
    for f in filters:
        kind = f.get("type")
        if kind == "RequestHeaderModifier":
            mod = _headers(f.get("requestHeaderModifier") or {})
            details.setdefault("headers", {})["request"] = mod
            forwarded["headers"] = apply_headers(forwarded["headers"], mod)
        elif kind == "ResponseHeaderModifier":
            details.setdefault("headers", {})["response"] = _headers(f.get("responseHeaderModifier") or {})
        elif kind == "RequestRedirect":
            r = f.get("requestRedirect") or {}
            scheme = r.get("scheme") or request.scheme
            port = r.get("port") or (WELL_KNOWN.get(scheme) if r.get("scheme") else listener_port)
            path = _replace_path(r["path"], request.uri, match) if r.get("path") else request.uri
            rhost = r.get("hostname") or host
            shown = "" if port in (None, WELL_KNOWN.get(scheme)) else f":{port}"
            status = int(r.get("statusCode") or 302)
            details["redirect"] = {"redirectCode": status, "scheme": scheme, "authority": rhost,
                                   "port": port, "uri": path, "location": f"{scheme}://{rhost}{shown}{path}"}
        elif kind == "URLRewrite":
            r = f.get("urlRewrite") or {}
            rewrite: dict[str, Any] = {}
            if r.get("hostname"):
                rewrite["authority"] = forwarded["host"] = str(r["hostname"])
            if r.get("path"):
                rewrite["uri"] = forwarded["path"] = _replace_path(r["path"], request.uri, match)
            details["rewrite"] = rewrite
        elif kind == "RequestMirror":
            m = f.get("requestMirror") or {}
            ref = m.get("backendRef") or {}
            details.setdefault("mirror", []).append(
                {"backend": f"{ref.get('namespace') or ''}/{ref.get('name')}".lstrip("/"),
                 **({"percent": m["percent"]} if "percent" in m else {}),
                 **({"fraction": m["fraction"]} if "fraction" in m else {})})
        elif kind == "CORS":  # istiod makes it the route's corsPolicy (conversion.go createCorsFilter)
            details["corsPolicy"] = cors.from_httproute(f.get("cors") or {})
        else:
            details.setdefault("filters", []).append(f)
    if "forwarded" in details:  # backend filters after the rule's: on what the rule forwards
        forwarded = {**details["forwarded"], **{k: v for k, v in forwarded.items() if k != "headers"}}
        forwarded["headers"] = apply_headers(details["forwarded"]["headers"],
                                             (details.get("headers") or {}).get("request") or {})
    details["forwarded"] = forwarded
    return status


def _answer(objects: Objects, route: dict[str, Any], rule_index: int, match: dict[str, Any],
            request: Request, listener_port: int) -> Answer:
    ns, name = meta(route)
    rule = ((route.get("spec") or {}).get("rules") or [])[rule_index]
    details: dict[str, Any] = {}
    status = _apply_filters(list(rule.get("filters") or []), request, match, listener_port, details)
    backends: dict[str, int] = {}
    invalid: dict[str, str] = {}
    if status is None:
        for ref in rule.get("backendRefs") or []:
            weight = int(ref.get("weight", 1))
            key = f"{ref.get('namespace') or ns}/{ref.get('name')}"
            problem = backend_problem(objects, ns, ref)
            if problem:
                invalid[key] = problem
            elif weight:
                backends[key] = backends.get(key, 0) + weight
            if ref.get("filters"):
                details.setdefault("backendFilters", {})[key] = ref["filters"]
        if not backends:
            status = 500
        refs = [r for r in rule.get("backendRefs") or [] if r.get("filters")]
        if status is None and len(backends) == 1 and len(refs) == 1:
            # one backend: its filters apply to every request of the rule (httproute_types.go HTTPBackendRef.Filters)
            status = _apply_filters(list(refs[0]["filters"]), request, match, listener_port, details)
            if status is not None:
                backends = {}
    if "corsPolicy" in details and status is None:  # Envoy's CORS filter, on a route that forwards
        answered = cors.answer(details["corsPolicy"], request)
        if answered is not None:
            details["cors"] = answered.as_json()
            if answered.answered:
                status, backends = 200, {}
    return Answer(ROUTE, f"{ns}/{name}", rule_index, rule.get("name"), backends, invalid, status, details)


def explain(objects: Objects, request: Request, *, gateway: tuple[str, str] | None = None,
            service: tuple[str, str] | None = None, port: int | None = None) -> Answer:
    """Where ``request`` goes, entering at ``gateway`` (a Gateway's listeners on ``port``, default
    every listener) or sent to ``service`` (GAMMA, from ``request.source_namespace``).

    Raises:
        ModelError: the Gateway or Service is not among the objects.
    """
    candidates: list[tuple[tuple[Any, ...], dict[str, Any], int, dict[str, Any], int]] = []
    if gateway is not None:
        host = request.authority.rpartition(":")[0] if ":" in request.authority else request.authority
        attached = gateway_attachments(objects, gateway, port)
        best = None
        for _, _, hosts in attached:
            for h in hosts:
                if (h == "*" or host_matches(h, host)) and (best is None or _specificity(h) < _specificity(best)):
                    best = h if h != "*" else (best or "*")
        if best is None:
            return Answer(NO_MATCH, status=404)
        chosen = [(r, int(li.get("port") or 0)) for r, li, hosts in attached if best in hosts]
    else:
        assert service is not None
        if service not in objects.services:
            raise ModelError(f"no Service {service[0]}/{service[1]} among the objects")
        routes = service_routes(objects, service, port, request.source_namespace)
        if not routes:
            return Answer(DEFAULT, backends={f"{service[0]}/{service[1]}": 1})
        chosen = [(r, port or request.port) for r in routes]
    seen = set()
    for route, lport in chosen:
        if id(route) in seen:
            continue
        seen.add(id(route))
        for i, rule in enumerate((route.get("spec") or {}).get("rules") or []):
            for j, match in enumerate(rule_matches(rule)):
                if match_matches(match, request):
                    candidates.append((precedence(route, i, j), route, i, match, lport))
    if not candidates:
        return Answer(NO_MATCH, status=404)
    _, route, i, match, lport = min(candidates, key=lambda c: c[0])
    return _answer(objects, route, i, match, request, lport)


def ordered_matches(routes: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int, int]]:
    """Every ``(route, rule index, match index)`` of ``routes`` in precedence order."""
    items = [(route, i, j) for route in routes
             for i, rule in enumerate((route.get("spec") or {}).get("rules") or [])
             for j, _ in enumerate(rule_matches(rule))]
    return sorted(items, key=lambda t: precedence(*t))
