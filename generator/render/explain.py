"""Where a request goes: the rendered VirtualService of an app, evaluated as Istio would.

``meshgen explain`` reads what is committed under ``rendered/`` -- the YAML Argo CD or Flux
applies -- not the spec, so it answers for what the cluster runs. The matching itself is
:mod:`generator.routing.simulate`; this module finds the files, reads them once
(:func:`load`), settles what istiod settles per proxy (the gateway, the port it listens on,
whether the authority is one of the VirtualService's hosts) and names the spec route behind
the Istio route (:func:`generator.routing.compiler.spec_route_name`). :meth:`Rendered.explain`
is pure, so many requests cost one read (``meshgen explain --requests``, route tests).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.errors import OutsideError, Place, SpecError, SpecErrors, UsageError
from generator.routing import compiler as routing
from generator.routing import simulate
from generator.routing.request import split_target
from generator.spec import config, paths
from generator import targets

#: :attr:`Explanation.outcome` when the authority is none of the VirtualService's hosts.
NOT_SERVED = "not-served"
#: HTTPRoute fields shown with the route taken, in this order (Istio's names).
ROUTE_DETAILS = ("timeout", "retries", "fault", "mirror", "mirrorPercentage", "rewrite", "redirect",
                 "directResponse", "headers", "corsPolicy")


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
            first host the Gateway serves), by its short name for a cluster-local host.
        scheme: ``:scheme``; ``None``: ``https`` on a Gateway server of protocol HTTPS, else ``http``.
        port: port the request is sent to; ``None``: the service port from the mesh, the
            Gateway server's port through a gateway.
        source_namespace: namespace of the calling workload.
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
    source_namespace: str = "default"
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
            of the Service, a gateway answers 404) or :data:`NOT_SERVED` (the authority is not
            one of the VirtualService's hosts).
        istio_index: index of the Istio HTTP route taken in ``spec.http``, or ``None``.
        istio_route: its ``name``, or ``None``.
        spec_route: the spec route whose destination that Istio route carries, or ``None``
            (also for the explicit 404 route :data:`generator.routing.compiler.NO_ROUTE`).
        destinations: ``{version: weight in percent}`` of that route (empty when none).
        details: the route's other fields that shape the answer, Istio's names and values
            (``timeout``, ``retries``, ``fault``, ``mirror`` as ``{version, percent}``,
            ``rewrite``, ``redirect``, ``directResponse``, ``headers``, ``corsPolicy``), and what
            they make of this request: ``location`` of a redirect, ``forwardedPath`` and
            ``forwardedAuthority`` after a rewrite.
        versions: the versions (DestinationRule subsets) an omitted VirtualService leaves the
            Service's default route to.
        hosts: the VirtualService's hosts (for the not-served message).
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
        """The status Envoy answers by itself (404, a redirect's or a direct response's code),
        or ``None`` when the request is forwarded."""
        if self.outcome == simulate.OMITTED:
            return None if self.request.gateway == "mesh" else 404
        if self.outcome != simulate.ROUTE:
            return 404
        if "redirect" in self.details:
            return int(self.details["redirect"].get("redirectCode") or 301)
        if "directResponse" in self.details:
            return int(self.details["directResponse"]["status"])
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
        or sorted(env_dir.glob(f"*/{app}/grpcroute.yaml"))
    if not found:
        raise SpecError(f"app {app!r} has no rendered VirtualService in environment {env!r}",
                        hint=f"run `meshgen render --env {env}` if the app is new")
    return found[0]


def _short_host(host: str) -> str:
    return host.split(".svc.", 1)[0].split(".")[0] if ".svc." in host else host


def _host_names(host: str) -> set[str]:
    """The names a sidecar's virtual host answers for a VirtualService host (istiod adds the
    short forms of a cluster-local name: ``reviews``, ``reviews.mesh``, ``reviews.mesh.svc``)."""
    names = {host}
    if ".svc." in host:
        base = host.split(".svc.", 1)[0]
        names |= {base, f"{base}.svc", base.split(".")[0]}
    return names


def _host_matches(authority: str, host: str) -> bool:
    if host.startswith("*"):
        return authority.endswith(host[1:])
    return authority == host


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

    def default_authority(self, gateway: str) -> str:
        hosts = self.hosts
        if gateway == "mesh":
            return _short_host(hosts[0]) if hosts else "example"
        served = [h for s in self._servers(gateway) for h in s.get("hosts") or []]
        for host in hosts:
            if any(_host_matches(host, h.split("/")[-1]) or h.split("/")[-1] == "*" for h in served):
                if not host.startswith("*"):
                    return host
        outside = [h for h in hosts if ".svc." not in h and not h.startswith("*")]
        return outside[0] if outside else (hosts[0] if hosts else "example")

    def server(self, gateway: str, authority: str, port: int | None) -> dict[str, Any] | None:
        """The Gateway server a request for ``authority`` reaches (on ``port`` if given)."""
        servers = [s for s in self._servers(gateway) if port is None or s["port"]["number"] == port]
        for server in servers:
            if any(_host_matches(authority, h.split("/")[-1]) or h.split("/")[-1] == "*"
                   for h in server.get("hosts") or []):
                return server
        return servers[0] if servers else None

    def serves(self, authority: str, port: int) -> bool:
        """Whether ``authority`` (``host`` or ``host:port``) names one of the VirtualService's hosts."""
        host, sep, given = authority.rpartition(":")
        if not sep or not given.isdigit():
            host = authority
        elif int(given) != port:
            return False
        host = host.lower()
        return host in self._names or any(_host_matches(host, name) for name in self._wildcards)

    @functools.cached_property
    def _names(self) -> frozenset[str]:
        return frozenset(n for h in self.hosts for n in _host_names(h.lower()) if not n.startswith("*"))

    @functools.cached_property
    def _wildcards(self) -> tuple[str, ...]:
        return tuple(h.lower() for h in self.hosts if h.startswith("*"))

    def request(self, ask: Ask) -> simulate.Request:
        """The request ``ask`` describes, everything settled.

        Raises:
            UsageError: ``ask.gateway`` is not bound by the VirtualService.
        """
        gateway = self.gateway(ask.gateway)
        authority = ask.authority or self.default_authority(gateway)
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
            source_labels=dict(ask.source_labels), source_namespace=ask.source_namespace, gateway=gateway)

    def explain(self, ask: Ask) -> Explanation:
        """Where ``ask`` goes.

        Raises:
            UsageError: ``ask.gateway`` is not bound by the VirtualService.
            OutsideError: the VirtualService uses a match field the model does not evaluate.
        """
        request = self.request(ask)
        base = {"path": self.path, "request": request, "hosts": self.hosts}
        if not self.serves(request.authority, request.port):
            return Explanation(outcome=NOT_SERVED, **base)
        http = (self.vs.get("spec") or {}).get("http") or []
        try:
            outcome = simulate.evaluate(http, request)
        except simulate.UnmodelledMatch as e:
            raise OutsideError(f"{self.path}: cannot evaluate this VirtualService: {e}") from e
        if outcome.route is None:
            return Explanation(outcome=outcome.kind, versions=self.versions, **base)
        route, index = outcome.route, outcome.index
        name = route.get("name", f"#{index}")
        details = route_details(route)
        query = "&".join([p for p in ask.uri.partition("#")[0].partition("?")[2].split("&") if p]
                         + [f"{k}={v}" for k, v in ask.query.items()])
        if "redirect" in route:
            details["location"] = redirect_location(route["redirect"], request, query)
        elif "rewrite" in route and "route" in route:
            forwarded = simulate.rewritten_path(route, outcome.block, request.uri)
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
    target = next(t for t in (targets.get(n) for n in targets.names())
                  if any(o.get("kind") in t.route_kinds for o in objects))
    try:
        vs, gateways = target.as_virtual_service(objects)
    except (KeyError, TypeError, StopIteration, AttributeError) as e:
        raise OutsideError(f"{rel}: cannot evaluate these routes: {e}") from e
    versions = sorted({d["destination"]["subset"] for r in vs["spec"]["http"] for d in r.get("route") or []})
    return Rendered(rel, vs, gateways, versions)


def explain(root: Path, app: str, env: str, ask: Ask) -> Explanation:
    """Which route of ``app``'s rendered VirtualService in ``env`` the request ``ask`` takes.

    Raises:
        SpecError: no such rendered app or environment (exit 1).
        UsageError: the gateway asked for is not bound by the VirtualService (exit 2).
        OutsideError: the rendered file cannot be read or evaluated (exit 3).
    """
    return load(root, app, env).explain(ask)
