"""Where a request goes: the rendered VirtualService of an app, evaluated as Istio would.

``meshgen explain`` reads what is committed under ``rendered/`` -- the YAML Argo CD or Flux
applies -- not the spec, so it answers for what the cluster runs. The matching itself is
:mod:`generator.routing.simulate`; this module finds the files, reads them once
(:func:`load`), settles what istiod settles per proxy (the gateway, the port it listens on,
whether the proxy serves the VirtualService by the request's authority) and names the spec route behind
the Istio route (:func:`generator.routing.compiler.spec_route_name`). :meth:`Rendered.explain`
is pure, so many requests cost one read (``meshgen explain --requests``, route tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.errors import OutsideError, Place, SpecError, SpecErrors, UsageError
from generator.routing import compiler as routing
from generator.routing import cors
from generator.routing import simulate
from generator.routing.hosts import kube_service
from generator.routing.request import split_target
from generator.spec import config, paths
from generator import targets

#: :attr:`Explanation.outcome` when the authority is none of the VirtualService's hosts.
NOT_SERVED = "not-served"
#: HTTPRoute fields shown with the route taken, in this order (Istio's names).
ROUTE_DETAILS = ("timeout", "retries", "fault", "mirror", "mirrorPercentage", "rewrite", "redirect",
                 "directResponse", "delegate", "headers", "corsPolicy")


@dataclass(frozen=True)
class Ask:
    """A request as a user describes it; what is left out is settled by :meth:`Rendered.explain`.

    Attributes:
        uri: the request target as sent: a path, optionally ``?query`` (a parameter given twice
            keeps its first value, as Envoy matches it); normalised as Envoy does.
        method: ``:method``.
        headers: header name -> value.
        query: more query parameters, after those of ``uri``.
        authority: ``:authority``; ``None``: the VirtualService's first host (at a gateway, its
            first host the Gateway serves), for a Service host by the name the caller's
            namespace resolves (``reviews`` in the Service's namespace, ``reviews.mesh`` elsewhere).
        scheme: ``:scheme``; ``None``: ``https`` on a Gateway server of protocol HTTPS, else ``http``.
        port: port the request is sent to; ``None``: the service port from the mesh, the
            Gateway server's port through a gateway.
        source_namespace: namespace of the calling workload; ``None``: the VirtualService's own
            (a caller beside the app, which may call it by its bare name).
        source_labels: labels of the calling workload.
        gateway: ``"mesh"``, ``"<namespace>/<name>"`` or a Gateway name in the
            VirtualService's namespace.
    """

    uri: str = "/"
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    authority: str | None = None
    scheme: str | None = None
    port: int | None = None
    source_namespace: str | None = None
    source_labels: dict[str, str] = field(default_factory=dict)
    gateway: str = "mesh"

    #: JSON keys of :meth:`from_json` (camelCase, as in a spec) -> field names.
    JSON_KEYS = {"uri": "uri", "method": "method", "headers": "headers", "query": "query",
                 "authority": "authority", "scheme": "scheme", "port": "port",
                 "sourceNamespace": "source_namespace", "sourceLabels": "source_labels",
                 "gateway": "gateway"}

    @classmethod
    def from_json(cls, data: Any, place: Place | None = None) -> "Ask":
        """An :class:`Ask` from a JSON object such as
        ``{"uri": "/reviews/1", "headers": {"end-user": "jason"}, "gateway": "mesh/reviews-gateway"}``.

        Raises:
            SpecError: not an object, an unknown key, or a value of the wrong type (at ``place``).
        """
        if not isinstance(data, dict):
            raise SpecError("a request must be a JSON object", place=place,
                            hint='e.g. {"uri": "/reviews/1", "headers": {"end-user": "jason"}}')
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            name = cls.JSON_KEYS.get(key)
            if name is None:
                raise SpecError(f"unknown request field {key!r}", place=place,
                                hint=f"known: {', '.join(cls.JSON_KEYS)}")
            if name in ("headers", "query", "source_labels"):
                ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
                want = "an object of strings"
            elif name == "port":
                ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
                want = "a port number"
            else:
                ok = isinstance(value, str) and bool(value)
                want = "a non-empty string"
            if not ok:
                raise SpecError(f"request field {key!r} must be {want}, not {json.dumps(value)}", place=place)
            kwargs[name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class Explanation:
    """Where one request goes.

    Attributes:
        path: repository-relative path of the rendered VirtualService read.
        request: the request evaluated, with everything settled (gateway, port, authority).
        outcome: :data:`generator.routing.simulate.ROUTE` (a route takes it),
            ``NO_MATCH`` (Envoy answers 404), ``OMITTED`` (no block applies to this proxy:
            istiod leaves the VirtualService out; a sidecar sends the request to every version
            of the Service, a gateway answers 404) or :data:`NOT_SERVED` (the authority is none
            of the names this proxy serves the VirtualService by: a sidecar's catch-all virtual
            host passes the request through to the address it was sent to, istiod's
            ``PassthroughCluster`` with the default ``outboundTrafficPolicy`` ``ALLOW_ANY``
            (httproute.go ``buildCatchAllVirtualHost``); a gateway answers 404).
        istio_index: index of the Istio HTTP route taken in ``spec.http``, or ``None``.
        istio_route: its ``name``, or ``None``.
        spec_route: the spec route whose destination that Istio route carries, or ``None``
            (also for the explicit 404 route :data:`generator.routing.compiler.NO_ROUTE`).
        destinations: ``{version: weight in percent}`` of that route (empty when none).
        details: the route's other fields that shape the answer, Istio's names and values
            (``timeout``, ``retries``, ``fault``, ``mirror`` as ``{version, percent}``,
            ``rewrite``, ``redirect``, ``directResponse``, ``headers``, ``corsPolicy``), and what
            they make of this request: ``location`` of a redirect, ``forwardedPath`` and
            ``forwardedAuthority`` after a rewrite, ``cors`` for a request with an ``Origin`` on a
            route with a ``corsPolicy`` (what Envoy's CORS filter does:
            :meth:`generator.routing.cors.Answer.as_json`).
        versions: the versions (DestinationRule subsets) an omitted VirtualService leaves the
            Service's default route to.
        hosts: the VirtualService's hosts (for the not-served message).
        domains: for :data:`NOT_SERVED`, the names this proxy serves the VirtualService by
            (:meth:`Rendered.domains`).
    """

    path: str
    request: simulate.Request
    outcome: str
    istio_index: int | None = None
    istio_route: str | None = None
    spec_route: str | None = None
    destinations: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """DESIGN §4: ``{"route": NAME or None, "destinations": {VERSION: WEIGHT}}``, plus
        ``outcome`` and the route's details (``timeout``, ``retries``, ...) when it has any."""
        out: dict[str, Any] = {"route": self.spec_route, "destinations": self.destinations,
                               "outcome": self.outcome}
        if self.outcome == simulate.OMITTED and self.request.gateway == "mesh":
            out["versions"] = self.versions
        out.update(self.details)
        return out

    @property
    def status(self) -> int | None:
        """The status Envoy answers by itself (404, a redirect's or a direct response's code, 200
        for a CORS preflight its CORS filter answers), or ``None`` when the request is forwarded."""
        if self.outcome in (simulate.OMITTED, NOT_SERVED):
            return None if self.request.gateway == "mesh" else 404
        if self.outcome != simulate.ROUTE:
            return 404
        if "redirect" in self.details:
            return int(self.details["redirect"].get("redirectCode") or 301)
        if "directResponse" in self.details:
            return int(self.details["directResponse"]["status"])
        if (self.details.get("cors") or {}).get("answered"):
            return 200
        return None


def virtual_service_path(root: Path, app: str, env: str) -> Path:
    """The rendered ``virtualservice.yaml`` of ``app`` in ``env``.

    Raises:
        SpecError: the environment has no rendered output, or the app no VirtualService in it.
    """
    rendered = config.load_settings(root).paths["rendered"]
    SpecErrors.collect(paths.output_problems(root, rendered))
    env_dir = root / rendered / env
    if not env_dir.is_dir():
        known = sorted(p.name for p in (root / rendered).glob("*") if p.is_dir() and not p.name.startswith("_"))
        raise SpecError(f"environment {env!r} has no rendered output under {rendered}/",
                        hint=f"known: {', '.join(known)}" if known else "run `meshgen render`")
    found = sorted(env_dir.glob(f"*/{app}/virtualservice.yaml")) or sorted(env_dir.glob(f"*/{app}/httproute.yaml")) \
        or sorted(env_dir.glob(f"*/{app}/grpcroute.yaml")) or sorted(env_dir.glob(f"*/{app}/tcproute-*.yaml")) \
        or sorted(env_dir.glob(f"*/{app}/tlsroute-*.yaml"))
    if not found:
        raise SpecError(f"app {app!r} has no rendered VirtualService in environment {env!r}",
                        hint=f"run `meshgen render --env {env}` if the app is new")
    return found[0]


def sidecar_domains(host: str, source_namespace: str) -> list[str]:
    """The domains of a sidecar's virtual host for a VirtualService host, for a proxy in
    ``source_namespace``, as istiod builds them (httproute.go ``generateVirtualHostDomains``,
    ``GenerateAltVirtualHosts``, ``generateAltVirtualHostsForKubernetesService``; the proxy's
    DNS domain is ``<namespace>.svc.<cluster domain>``).

    A Kubernetes Service host ``reviews.mesh.svc.cluster.local`` is served by that name, by its
    absolute form ``reviews.mesh.svc.cluster.local.``, by ``reviews.mesh`` and
    ``reviews.mesh.svc``, and by the bare ``reviews`` only to a proxy in ``mesh``. Any other
    host is served by its own name (a wildcard as Envoy matches it). Sidecars match hosts
    without the port (istiod sets ``ignore_port_in_host_matching``), so no ``:port`` forms.
    """
    service = kube_service(host)
    if service is None:
        return [host]
    name, namespace = service
    base = f"{name}.{namespace}"
    alt = [name, f"{base}.svc", base] if namespace == source_namespace else [base, f"{base}.svc"]
    return [host, f"{host}.", *alt]


def gateway_domains(vs_hosts: list[str], server_hosts: list[str], vs_namespace: str) -> list[str]:
    """The domains a gateway serves a VirtualService by: the hosts its server and the
    VirtualService share (gateway.go ``buildGatewayHTTPRouteConfig``:
    ``host.NamesForNamespace(server.Hosts, vs.Namespace).Intersection(vs.Hosts)``; pkg/config/host
    ``Names.Intersection``, ``Name.SubsetOf``): for each pair, the narrower of the two, the
    server's ``ns/`` prefix dropped when ``ns`` is the VirtualService's namespace or ``*``.
    No short names: a gateway knows only these."""
    server_names = []
    for h in server_hosts:
        ns, sep, name = h.partition("/")
        if sep and ns not in (vs_namespace, "*"):
            continue
        server_names.append((name if sep else h).lower())
    out: list[str] = []
    for s_host in server_names:
        for v_host in (h.lower() for h in vs_hosts):
            narrower = s_host if _subset_of(s_host, v_host) else v_host if _subset_of(v_host, s_host) else None
            if narrower is not None and narrower not in out:
                out.append(narrower)
    return out


def _subset_of(n: str, o: str) -> bool:
    """pkg/config/host ``Name.SubsetOf``: ``n`` is covered by ``o``."""
    if n.startswith("*"):
        return o.startswith("*") and len(n) >= len(o) and n[1:].endswith(o[1:])
    if o.startswith("*"):
        return n.endswith(o[1:])
    return n == o


def domain_matches(host: str, domain: str) -> bool:
    """Envoy's virtual host ``domains`` match of a lower-case ``host`` (port removed): exact,
    ``*``, a suffix wildcard ``*.example.com`` or a prefix wildcard ``example.*``; a
    wildcard stands for at least one character."""
    if domain == "*":
        return True
    if domain.startswith("*"):
        return len(host) > len(domain) - 1 and host.endswith(domain[1:])
    if domain.endswith("*"):
        return len(host) > len(domain) - 1 and host.startswith(domain[:-1])
    return host == domain


def host_of(authority: str) -> str:
    """``authority`` lower-cased, without its port, as Envoy matches it with
    ``ignore_port_in_host_matching`` (Envoy ``HeaderUtility::getPortStart``: after the last
    ``:`` unless that is inside an IPv6 ``[...]``)."""
    colon = authority.rfind(":")
    if colon != -1 and authority.rfind("]") < colon:
        authority = authority[:colon]
    return authority.lower()


@dataclass
class Rendered:
    """An app's rendered VirtualService, its Gateways and subsets, read once.

    Attributes:
        path: repository-relative path of the VirtualService.
        vs: the VirtualService object.
        gateways: ``{"<namespace>/<name>": Gateway object}`` of the rendered Gateways beside it.
        versions: the DestinationRule's subset names.
    """

    path: str
    vs: dict[str, Any]
    gateways: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: list[str] = field(default_factory=list)
    _domains: dict[tuple[str, int | None, str], list[str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def namespace(self) -> str:
        return (self.vs.get("metadata") or {}).get("namespace") or "default"

    @property
    def hosts(self) -> list[str]:
        return list((self.vs.get("spec") or {}).get("hosts") or [])

    @property
    def bound_gateways(self) -> list[str]:
        """``spec.gateways`` with short names qualified; ``["mesh"]`` when it names none."""
        names = (self.vs.get("spec") or {}).get("gateways") or ["mesh"]
        return [g if g == "mesh" or "/" in g else f"{self.namespace}/{g}" for g in names]

    def service_port(self) -> int:
        """The port the routes' destinations name (80 when none does)."""
        for route in (self.vs.get("spec") or {}).get("http") or []:
            for dest in route.get("route") or []:
                number = ((dest.get("destination") or {}).get("port") or {}).get("number")
                if number:
                    return int(number)
        return 80

    def gateway(self, name: str) -> str:
        """``name`` as the VirtualService names it.

        Raises:
            UsageError: the VirtualService does not bind that gateway (the message lists those
                it binds).
        """
        bound = self.bound_gateways
        full = name if name == "mesh" or "/" in name else f"{self.namespace}/{name}"
        if full not in bound:
            raise UsageError(f"gateway {name!r} is not bound by {self.path}; it binds: {', '.join(bound)}"
                             + (" (write a gateway as <namespace>/<name>)" if "/" not in name and name != "mesh" else ""))
        return full

    def _servers(self, gateway: str) -> list[dict[str, Any]]:
        return list(((self.gateways.get(gateway) or {}).get("spec") or {}).get("servers") or [])

    def default_authority(self, gateway: str, source_namespace: str | None = None) -> str:
        """The authority a caller would use: through the mesh, the first host by the shortest
        name the caller's namespace resolves (``reviews`` beside the Service, ``reviews.mesh``
        from elsewhere); through a gateway, the first host the Gateway serves."""
        hosts = self.hosts
        source_namespace = source_namespace or self.namespace
        if gateway == "mesh":
            if not hosts:
                return "example"
            service = kube_service(hosts[0].lower())
            if service is None:
                return hosts[0]
            name, namespace = service
            return name if namespace == source_namespace else f"{name}.{namespace}"
        served = [d for d in self.domains(gateway, None, source_namespace) if "*" not in d]
        outside = [d for d in served if ".svc." not in d]
        return (outside or served or hosts or ["example"])[0]

    def server(self, gateway: str, authority: str, port: int | None) -> dict[str, Any] | None:
        """The Gateway server a request for ``authority`` reaches (on ``port`` if given)."""
        servers = [s for s in self._servers(gateway) if port is None or s["port"]["number"] == port]
        for server in servers:
            if any(domain_matches(host_of(authority), h.split("/")[-1].lower()) for h in server.get("hosts") or []):
                return server
        return servers[0] if servers else None

    def domains(self, gateway: str, port: int | None, source_namespace: str) -> list[str]:
        """The names the proxy serves this VirtualService by: a sidecar in ``source_namespace``
        (:func:`sidecar_domains`), or the Gateway ``gateway``'s servers on ``port`` (every port
        when ``None``; :func:`gateway_domains`). For a Gateway that is not rendered beside the
        VirtualService, its servers are unknown and the VirtualService's hosts are taken as
        they are."""
        key = (gateway, port, source_namespace)
        if key not in self._domains:
            self._domains[key] = self._domains_of(gateway, port, source_namespace)
        return self._domains[key]

    def _domains_of(self, gateway: str, port: int | None, source_namespace: str) -> list[str]:
        if gateway == "mesh":
            return list(dict.fromkeys(d for h in self.hosts for d in sidecar_domains(h.lower(), source_namespace)))
        if gateway not in self.gateways:
            return [h.lower() for h in self.hosts]
        servers = [s for s in self._servers(gateway) if port is None or s["port"]["number"] == port]
        return gateway_domains(self.hosts, [h for s in servers for h in s.get("hosts") or []], self.namespace)

    def serves(self, request: simulate.Request) -> bool:
        """Whether the proxy ``request`` goes through routes its authority by this
        VirtualService (:meth:`domains`); Istio's proxies match the host without its port. A
        delegate VirtualService has no hosts: it serves what its root hands to it."""
        if not self.hosts:
            return True
        host = host_of(request.authority)
        return any(domain_matches(host, d) for d in self.domains(request.gateway, request.port, request.source_namespace))

    def request(self, ask: Ask) -> simulate.Request:
        """The request ``ask`` describes, everything settled.

        Raises:
            UsageError: ``ask.gateway`` is not bound by the VirtualService.
        """
        gateway = self.gateway(ask.gateway)
        source_namespace = ask.source_namespace or self.namespace
        authority = ask.authority or self.default_authority(gateway, source_namespace)
        path, params = split_target(ask.uri)
        for key, value in ask.query.items():
            params.setdefault(key, value)
        port, scheme = ask.port, ask.scheme
        if gateway == "mesh":
            port = self.service_port() if port is None else port
        else:  # the Gateway server's port (and its protocol's scheme)
            server = self.server(gateway, authority, port)
            if server is not None:
                port = int(server["port"]["number"]) if port is None else port
                if scheme is None and str(server["port"].get("protocol", "")).upper() == "HTTPS":
                    scheme = "https"
        return simulate.Request(
            headers=dict(ask.headers), query=params, uri=path, method=ask.method, authority=authority,
            scheme=scheme or "http", port=80 if port is None else port,
            source_labels=dict(ask.source_labels), source_namespace=source_namespace, gateway=gateway)

    def explain(self, ask: Ask) -> Explanation:
        """Where ``ask`` goes.

        Raises:
            UsageError: ``ask.gateway`` is not bound by the VirtualService.
            OutsideError: the VirtualService uses a match field the model does not evaluate.
        """
        request = self.request(ask)
        base = {"path": self.path, "request": request, "hosts": self.hosts}
        if not self.serves(request):
            return Explanation(outcome=NOT_SERVED, domains=self.domains(
                request.gateway, request.port, request.source_namespace), **base)
        http = (self.vs.get("spec") or {}).get("http") or []
        try:
            outcome = simulate.evaluate(http, request)
        except simulate.UnmodelledMatch as e:
            raise OutsideError(f"{self.path}: cannot evaluate this VirtualService: {e}") from e
        if outcome.kind == simulate.OMITTED and request.gateway == "mesh":
            # route.go BuildSidecarVirtualHostWrapper: without the VirtualService the Service keeps
            # a virtual host of its own names (buildSidecarVirtualHostForService); its other hosts
            # (an exposed host) go. A VirtualService without a Service host is taken as a registry host.
            own = [d for h in self.hosts if kube_service(h.lower())
                   for d in sidecar_domains(h.lower(), request.source_namespace)]
            if own and not any(domain_matches(host_of(request.authority), d) for d in own):
                return Explanation(outcome=NOT_SERVED, domains=own, **base)
        if outcome.route is None:
            return Explanation(outcome=outcome.kind, versions=self.versions, **base)
        route, index = outcome.route, outcome.index
        name = route.get("name", f"#{index}")
        details = route_details(route)
        query = "&".join([p for p in ask.uri.partition("#")[0].partition("?")[2].split("&") if p]
                         + [f"{k}={v}" for k, v in ask.query.items()])
        if "corsPolicy" in route and "route" in route:  # Envoy's CORS filter (only on a route that forwards)
            answered = cors.answer(route["corsPolicy"], request)
            if answered is not None:
                details["cors"] = answered.as_json()
        if "redirect" in route:
            details["location"] = redirect_location(route["redirect"], request, query)
        elif "rewrite" in route and "route" in route:
            try:
                forwarded = simulate.rewritten_path(route, outcome.block, request.uri)
            except simulate.UnmodelledMatch as e:
                raise OutsideError(f"{self.path}: cannot evaluate this VirtualService: {e}") from e
            authority = route["rewrite"].get("authority")
            if forwarded != request.uri:
                details["forwardedPath"] = forwarded + (f"?{query}" if query else "")
            if authority:
                details["forwardedAuthority"] = authority
        return Explanation(outcome=outcome.kind, istio_index=index, istio_route=name,
                           spec_route=routing.spec_route_name(name), destinations=simulate.destinations(route),
                           details=details, **base)


def redirect_location(redirect: dict[str, Any], request: simulate.Request, query: str) -> str:
    """The ``location`` of Envoy's redirect (route.go ``ApplyRedirect``): ``uri`` replaces the
    path, the query string is kept; ``authority``, ``scheme`` and ``port`` (or ``derivePort``)
    replace the request's; a port that is the scheme's default is left out."""
    scheme = redirect.get("scheme") or request.scheme
    host = redirect.get("authority") or request.authority
    port = None
    if redirect.get("derivePort") == "FROM_REQUEST_PORT":
        port = request.port
    elif "port" in redirect:
        port = int(redirect["port"])
    if port is not None and (scheme, port) in (("http", 80), ("https", 443)):
        port = None
    if port is not None:
        host = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    path = redirect.get("uri") or request.uri
    return f"{scheme}://{host}{f':{port}' if port else ''}{path}{f'?{query}' if query else ''}"


def route_details(route: dict[str, Any]) -> dict[str, Any]:
    """The fields of an HTTP route that shape the answer besides its destinations, Istio's
    names and values; ``mirror`` and ``mirrorPercentage`` become ``mirror: {version, percent}``."""
    out: dict[str, Any] = {}
    for key in ROUTE_DETAILS:
        if key not in route:
            continue
        if key == "mirror":
            mirror = route["mirror"]
            out["mirror"] = {"version": mirror.get("subset") or mirror.get("host"),
                             "percent": (route.get("mirrorPercentage") or {}).get("value", 100.0)}
        elif key != "mirrorPercentage":
            out[key] = route[key]
    return out


def _read(path: Path, rel: str) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
    except (OSError, yaml.YAMLError) as e:
        raise OutsideError(f"{rel}: cannot read it: {e}") from e


def l4_routes(vs: dict[str, Any]) -> list[str]:
    """One line per TCP and TLS route of a rendered VirtualService, in Istio's order (first
    match wins): ``tcp #1 on port 5432 -> v1 90%, v2 10%``. ``explain`` follows HTTP requests;
    these routes are shown as they are (Istio: ``TCPRoute``, ``TLSRoute`` of virtual_service.proto)."""
    lines = []
    spec = vs.get("spec") or {}
    for key in ("tcp", "tls"):
        for i, route in enumerate(spec.get(key) or []):
            matches = []
            for block in route.get("match") or []:
                parts = [f"port {block['port']}"] if "port" in block else []
                parts += [f"SNI {', '.join(block['sniHosts'])}"] if block.get("sniHosts") else []
                parts += [f"{k} {block[k]}" for k in ("destinationSubnets", "sourceLabels", "sourceNamespace",
                                                        "gateways") if k in block]
                matches.append(" and ".join(parts) or "every connection")
            where = " or ".join(matches) or "every connection"
            dests = ", ".join(f"{name} {weight}%" for name, weight in simulate.destinations(route).items())
            lines.append(f"{key} #{i + 1} on {where} -> {dests}")
    return lines


def load(root: Path, app: str, env: str) -> Rendered:
    """Read ``app``'s rendered VirtualService in ``env``, with its Gateways and DestinationRule.

    Raises:
        SpecError: no such rendered app or environment (exit 1).
        OutsideError: a rendered file cannot be read or is not what it should be.
    """
    path = virtual_service_path(root, app, env)
    rel = path.relative_to(root).as_posix()
    vs = _read(path, rel)
    if isinstance(vs, dict) and vs.get("kind") in targets.get("gateway-api").route_kinds:
        return _load_converted(root, path, rel)
    if not isinstance(vs, dict) or vs.get("kind") != "VirtualService" or not isinstance(vs.get("spec"), dict):
        raise OutsideError(f"{rel}: cannot evaluate this VirtualService: not a VirtualService")
    gateways = {}
    gw_path = path.parent / "gateway.yaml"
    if gw_path.is_file():
        gw = _read(gw_path, gw_path.relative_to(root).as_posix())
        if isinstance(gw, dict) and gw.get("kind") == "Gateway":
            meta = gw.get("metadata") or {}
            gateways[f"{meta.get('namespace')}/{meta.get('name')}"] = gw
    versions: list[str] = []
    dr_path = path.parent / "destinationrule.yaml"
    if dr_path.is_file():
        dr = _read(dr_path, dr_path.relative_to(root).as_posix())
        if isinstance(dr, dict):
            versions = [s.get("name") for s in (dr.get("spec") or {}).get("subsets") or []]
    return Rendered(rel, vs, gateways, versions)


def _load_converted(root: Path, path: Path, rel: str) -> Rendered:
    """An app rendered by a target other than Istio's (its route objects beside ``path``), read
    as the VirtualService Istio converts them into (:meth:`generator.targets.Target.as_virtual_service`)."""
    objects = []
    for file in sorted(path.parent.glob("*.yaml")):
        obj = _read(file, file.relative_to(root).as_posix())
        if isinstance(obj, dict) and isinstance(obj.get("spec"), dict):
            objects.append(obj)
    target = targets.of_objects(objects)
    try:
        vs, gateways = target.as_virtual_service(objects)
    except (KeyError, TypeError, StopIteration, AttributeError) as e:
        raise OutsideError(f"{rel}: cannot evaluate these routes: {e}") from e
    versions = sorted({d["destination"]["subset"] for r in vs["spec"]["http"] for d in r.get("route") or []
                       if d["destination"].get("subset")})
    return Rendered(rel, vs, gateways, versions)


def explain(root: Path, app: str, env: str, ask: Ask) -> Explanation:
    """Which route of ``app``'s rendered VirtualService in ``env`` the request ``ask`` takes.

    Raises:
        SpecError: no such rendered app or environment (exit 1).
        UsageError: the gateway asked for is not bound by the VirtualService (exit 2).
        OutsideError: the rendered file cannot be read or evaluated (exit 3).
    """
    return load(root, app, env).explain(ask)
