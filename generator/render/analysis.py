"""Cross-object analysis of one environment's rendered Istio objects, like ``istioctl analyze``.

Rendering checks each App spec on its own; the mistakes this module finds only show when the
objects of all apps of an environment are looked at together -- two VirtualServices claiming
one host, a route to a subset no DestinationRule defines, a Gateway host nothing routes.
meshgen's own templates never produce most of them, but a repository's own ``templates/``
override can, and Istio accepts every one of them silently and then misroutes or drops
traffic. Each finding has a stable code; the Istio analyzer it mirrors is named in the table
(message codes from ``pkg/config/analysis/msg/messages.yaml`` of istio/istio):

====== ======= =============================================== ==================================
code   level   finding                                         mirrors
====== ======= =============================================== ==================================
MG101  error   VirtualService routes to a subset that no       IST0101 ReferencedResourceNotFound
               DestinationRule of the host defines             (host+subset in destinationrule)
MG102  error   two VirtualServices bind the same host on the   IST0109 ConflictingMeshGateway-
               same gateway (Istio merges them unpredictably)  VirtualServiceHosts
MG103  error   a Gateway serves a host that no VirtualService  none (Envoy answers 404)
               bound to that Gateway routes
MG104  error   a VirtualService host is served by none of the  IST0132 VirtualServiceHostNot-
               Gateways it binds (an exposed host on no        FoundInGateway
               Gateway)
MG105  warning a VirtualService binds a Gateway that is not    IST0101 ReferencedResourceNotFound
               rendered in this environment                    (gateway)
MG106  error   a DestinationRule subset's labels select no     IST0127 NoMatchingWorkloadsFound
               version of the app
MG107  error   DestinationRules disagree on mutual TLS for one IST0113 MTLSPolicyConflict
               host (host level, subset level, or two rules)
MG108  warning apps of one namespace are reached with          IST0113 MTLSPolicyConflict
               ISTIO_MUTUAL and with plain text or SIMPLE TLS  (namespace-wide PeerAuthentication)
MG109  error   a VirtualService binds a Gateway that nothing   IST0101 ReferencedResourceNotFound
               in the repository renders and the environment   (gateway)
               does not declare in spec.externalGateways
MG110  error   two ServiceEntries declare one host, both       —
               visible in one namespace
MG111  warning a DestinationRule's host is routed to by        IST0101 ReferencedResourceNotFound
               nothing: no route, ServiceEntry, app Service    (host)
               or declared external host
MG112  error   a TLS or TCP route matches a port (or binds a   —
               Gateway) where its Gateway serves no TLS/TCP
MG201  error   an HTTPRoute parentRef names a Gateway that is  Accepted=False NoMatchingParent
               not among the objects, or a listener            (gateway-api status reasons;
               (sectionName, port) the Gateway does not have;  Istio: parent service not found)
               or a Service (GAMMA) or ServiceEntry that is
               not among them, or a port it does not have
MG202  error   an HTTPRoute's hostnames intersect none of its  Accepted=False
               parent listener's hostname                      NoMatchingListenerHostname
MG203  error   an HTTPRoute backendRef names a Service that    ResolvedRefs=False BackendNotFound
               does not exist (its requests answer 500)
MG204  warning an HTTPRoute match can never be taken: one of   —
               higher precedence takes every request it does,
               in its route or another merged on one parent
MG205  error   an HTTPRoute refers to a Service in another     ResolvedRefs=False RefNotPermitted
               namespace and no ReferenceGrant there allows it
====== ======= =============================================== ==================================

The module is pure: :func:`analyze_objects` takes rendered objects (anything with the fields
of ``generator.render.render.RenderedObject``) and returns findings; :func:`analyze` feeds it a
:class:`generator.render.render.Rendering` and the App specs behind it. Neither does IO. Hosts are compared
fully qualified, as Istio does: a short name ``ratings`` in namespace ``mesh`` is
``ratings.mesh.svc.cluster.local`` (Istio docs: VirtualService ``hosts``, DestinationRule
``host``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol

from generator.errors import Place, SpecError
from generator.routing import httproute
from generator.routing.hosts import kube_service

if TYPE_CHECKING:
    from generator.render import render

MESH = "mesh"
"""The reserved gateway name for the sidecars of the mesh (Istio VirtualService ``gateways``)."""

MUTUAL_MODES = frozenset({"ISTIO_MUTUAL"})
"""DestinationRule ``tls.mode`` values that speak Istio mutual TLS to the server sidecar."""

CODES: dict[str, tuple[str, str]] = {
    "MG101": ("error", "IST0101 ReferencedResourceNotFound"),
    "MG102": ("error", "IST0109 ConflictingMeshGatewayVirtualServiceHosts"),
    "MG103": ("error", ""),
    "MG104": ("error", "IST0132 VirtualServiceHostNotFoundInGateway"),
    "MG105": ("warning", "IST0101 ReferencedResourceNotFound"),
    "MG106": ("error", "IST0127 NoMatchingWorkloadsFound"),
    "MG107": ("error", "IST0113 MTLSPolicyConflict"),
    "MG108": ("warning", "IST0113 MTLSPolicyConflict"),
    "MG109": ("error", "IST0101 ReferencedResourceNotFound"),
    "MG110": ("error", ""),
    "MG111": ("warning", "IST0101 ReferencedResourceNotFound"),
    "MG112": ("error", ""),
    "MG201": ("error", "Accepted=False NoMatchingParent"),
    "MG202": ("error", "Accepted=False NoMatchingListenerHostname"),
    "MG203": ("error", "ResolvedRefs=False BackendNotFound"),
    "MG204": ("warning", ""),
    "MG205": ("error", "ResolvedRefs=False RefNotPermitted"),
}
"""Finding code -> (level, the Istio analyzer message it mirrors, empty when none)."""


class RenderedObjectLike(Protocol):
    """The fields of ``generator.render.render.RenderedObject`` that analysis reads."""

    env: str
    app: str
    namespace: str
    kind: str
    obj: dict
    path: str
    place: Place | None


PlaceOf = Callable[[str, str, tuple], Place]
"""``place_of(app, env, keys)``: the place of a key path in the effective App spec."""

Versions = Mapping[tuple[str, str], Mapping[str, Mapping[str, str]]]
"""``{(env, app): {version: pod labels}}`` -- the App spec's ``versions`` per environment."""


@dataclass
class Finding(SpecError):
    """One analysis finding; a :class:`SpecError` with a stable ``code`` and a ``level``.

    Attributes:
        code: ``MG1xx``, see the module table.
        level: ``error`` (``meshgen validate`` fails) or ``warning`` (printed only).
        env: the environment whose rendered objects show the problem.
    """

    code: str = ""
    level: str = "error"
    env: str = ""

    def format(self) -> str:
        """``path:line:col: error: message [MG101]`` (``warning:`` for warnings)."""
        where = f"{self.place}: " if self.place else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{self.level}: {self.message}{hint} [{self.code}]"


def fqdn(host: str, namespace: str) -> str:
    """The fully qualified form of a service host as Istio resolves it in ``namespace``.

    A name without dots is a Kubernetes Service of that namespace
    (``<name>.<namespace>.svc.cluster.local``); a name with a dot is already fully qualified and
    is kept, as is ``*`` (istiod: ``ResolveShortnameToFQDN`` in ``pilot/pkg/model/config.go``;
    the analyzers: ``ConvertHostToFQDN`` in ``pkg/config/analysis/analyzers/util/hosts.go``). So
    ``example.com`` stays ``example.com`` and ``ratings.mesh`` is not completed either.
    """
    if host == "*" or "." in host:
        return host
    return f"{host}.{namespace}.svc.cluster.local"


def gateway_ref(ref: str, namespace: str) -> str:
    """``ns/name`` of a VirtualService ``gateways`` entry (``mesh`` stays ``mesh``)."""
    if ref == MESH or "/" in ref:
        return ref
    return f"{namespace}/{ref}"


def server_host(host: str) -> str:
    """A Gateway server host without its ``namespace/`` qualifier (``*/`` and ``./`` included)."""
    return host.split("/", 1)[1] if "/" in host else host


def host_matches(pattern: str, host: str) -> bool:
    """Whether a Gateway server host pattern (``*``, ``*.example.com``) covers ``host``."""
    if pattern == "*" or pattern == host:
        return True
    return pattern.startswith("*.") and host.endswith(pattern[1:])


def analyze(rendering: "render.Rendering") -> list[Finding]:
    """Run every analyzer over a rendering (what ``meshgen validate`` calls).

    The App specs' versions feed MG106, and each finding points at the spec value it comes
    from (the route, the version, the tls mode) in the App file or the environment override
    that set it.

    Returns:
        All findings, errors and warnings, sorted by environment and place.
    """
    repo = rendering.repo
    effective: dict[tuple[str, str], Any] = {}

    def app(env: str, name: str) -> Any:
        if (env, name) not in effective:
            effective[(env, name)] = repo.effective_app(name, env)
        return effective[(env, name)]

    pairs = sorted({(o.env, o.app) for o in rendering.objects})
    versions = {(env, name): {v: (spec or {}).get("labels") or {}
                              for v, spec in app(env, name).spec.get("versions", {}).items()}
                for env, name in pairs}
    def place_of(name: str, env: str, keys: tuple) -> Place:
        spec_app = app(env, name)
        if keys[:2] == ("spec", "routes") and len(keys) > 2 and isinstance(keys[2], str):
            names = [r.get("name") for r in spec_app.spec.get("routes") or []]
            route = keys[2]
            index = next((i for i, n in enumerate(names) if n == route), None)
            if index is None:  # a compiled route named after its spec route plus a suffix
                index = next((i for i, n in enumerate(names) if n and route.startswith(f"{n}-")), None)
            keys = ("spec", "routes") if index is None else ("spec", "routes", index, *keys[3:])
        return spec_app.place(*keys)

    external = {env: (repo.environments[env].data.get("spec") or {}) for env in rendering.envs}
    own = [s for env, name in pairs if (s := _app_service(env, app(env, name))) is not None]
    return analyze_objects([*rendering.objects, *own], versions=versions, place_of=place_of,
                           external={env: {"gateways": spec.get("externalGateways") or [],
                                           "hosts": spec.get("externalHosts") or []}
                                     for env, spec in external.items()})


@dataclass
class _AppService:
    """The app's own Service, which meshgen does not render but a GAMMA parentRef names."""

    env: str
    app: str
    namespace: str
    obj: dict
    path: str
    place: Place | None
    kind: str = "Service"


def _app_service(env: str, app: Any) -> _AppService | None:
    """The Service ``spec.service.host`` names, if a Kubernetes Service, with the ports the spec
    says it has: ``spec.service.port`` and the ports its ``tcp`` and ``tls`` routes match (a
    VirtualService's L4 match port is a port of the Service, as the TCPRoute or TLSRoute parent's)."""
    service = app.spec.get("service") or {}
    found = kube_service(fqdn(str(service.get("host") or ""), app.namespace))
    if found is None:
        return None
    name, namespace = found
    ports = [service["port"]] if service.get("port") else []
    for key in ("tcp", "tls"):
        for route in app.spec.get(key) or []:
            for match in (route.get("match") or []) if isinstance(route, dict) else []:
                if isinstance(match, dict) and isinstance(match.get("port"), int) and match["port"] not in ports:
                    ports.append(match["port"])
    spec: dict[str, Any] = {"ports": [{"port": port} for port in ports]} if ports else {}
    place = app.place("spec", "service", "host")
    return _AppService(env, app.name, namespace, {"apiVersion": "v1", "kind": "Service",
                                                  "metadata": {"name": name, "namespace": namespace}, "spec": spec},
                       place.path, place)


def analyze_objects(objects: Iterable[RenderedObjectLike], *, versions: Versions | None = None,
                    place_of: PlaceOf | None = None,
                    external: Mapping[str, Mapping[str, list[str]]] | None = None) -> list[Finding]:
    """Run every analyzer over the rendered objects of one or more environments.

    Objects of different environments never see each other. Findings are sorted by place.

    Args:
        objects: rendered Istio objects (``RenderedObject`` or alike); kinds other than
            VirtualService, DestinationRule and Gateway are ignored.
        versions: the App specs' versions per ``(env, app)``, for MG106; without it MG106
            is not run.
        place_of: maps ``(app, env, spec key path)`` to a precise spec place; without it a
            finding carries the place of the object's source spec.
        external: per environment, ``{"gateways": [...], "hosts": [...]}``: the Gateways and
            destination hosts the environment declares outside the repository
            (``spec.externalGateways``, ``spec.externalHosts``), for MG101, MG105, MG109, MG111.

    Returns:
        All findings, errors and warnings, in a stable order.
    """
    objects = list(objects)
    by_env: dict[str, list[RenderedObjectLike]] = defaultdict(list)
    for o in objects:
        if o.kind in ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry"):
            by_env[o.env].append(o)
    # a Gateway some environment renders is declared by the repository (MG105, not MG109, elsewhere)
    declared = {f"{_ns(o)}/{(o.obj.get('metadata') or {}).get('name')}"
                for env_objects in by_env.values() for o in env_objects if o.kind == "Gateway"}
    findings: list[Finding] = []
    for env in sorted(by_env):
        findings.extend(_Environment(env, by_env[env], versions or {}, place_of,
                                     (external or {}).get(env) or {}, declared).findings())
    findings.extend(analyze_gateway_api(objects))
    return sorted(findings, key=lambda f: (f.env, f.sort_key(), f.code))


def errors_of(findings: Iterable[Finding]) -> list[Finding]:
    """The findings of level ``error`` (those that make ``meshgen validate`` fail)."""
    return [f for f in findings if f.level == "error"]


def _name(o: RenderedObjectLike) -> str:
    meta = o.obj.get("metadata") or {}
    return f"{meta.get('name', o.app)}.{meta.get('namespace', o.namespace)}"


def _ns(o: RenderedObjectLike) -> str:
    return (o.obj.get("metadata") or {}).get("namespace") or o.namespace


def _spec(o: RenderedObjectLike) -> dict:
    return o.obj.get("spec") or {}


def _tls_mode(policy: dict | None) -> str | None:
    return ((policy or {}).get("tls") or {}).get("mode")


class _Environment:
    """The analyzers over one environment's objects; each method yields findings."""

    def __init__(self, env: str, objects: list[RenderedObjectLike], versions: Versions,
                 place_of: PlaceOf | None, external: Mapping[str, list[str]] | None = None,
                 declared: set[str] | None = None) -> None:
        self.env = env
        self.versions = versions
        self.place_of = place_of
        self.external_gateways = set((external or {}).get("gateways") or [])
        self.external_hosts = list((external or {}).get("hosts") or [])
        self.declared = declared or set()
        self.vss = [o for o in objects if o.kind == "VirtualService"]
        self.drs = [o for o in objects if o.kind == "DestinationRule"]
        self.entries = [o for o in objects if o.kind == "ServiceEntry"]
        self.gateways = {f"{_ns(o)}/{(o.obj.get('metadata') or {}).get('name')}": o
                         for o in objects if o.kind == "Gateway"}

    def findings(self) -> list[Finding]:
        out: list[Finding] = []
        for analyzer in (self.undefined_subsets, self.conflicting_hosts, self.unrouted_gateway_hosts,
                         self.hosts_not_on_gateway, self.missing_gateways, self.unselected_subsets,
                         self.mtls_host_conflicts, self.mtls_namespace_mix, self.duplicate_service_entries,
                         self.unrouted_destination_rules, self.l4_routes_off_gateway):
            out.extend(analyzer())
        return out

    def finding(self, code: str, o: RenderedObjectLike, message: str, keys: tuple = (),
                hint: str | None = None) -> Finding:
        place = o.place
        if self.place_of is not None and keys:
            place = self.place_of(o.app, o.env, keys)
        return Finding(f"{self.env}: {message}", place=place, hint=hint, code=code,
                       level=CODES[code][0], env=self.env)

    def subsets_by_host(self) -> dict[str, set[str]]:
        subsets: dict[str, set[str]] = defaultdict(set)
        for dr in self.drs:
            host = fqdn(_spec(dr).get("host", ""), _ns(dr))
            subsets[host].update(s.get("name", "") for s in _spec(dr).get("subsets") or [])
        return subsets

    def undefined_subsets(self) -> Iterable[Finding]:
        """MG101: a route destination names a subset no DestinationRule of its host defines."""
        subsets = self.subsets_by_host()
        for vs in self.vss:
            seen: set[tuple[str, str]] = set()
            spec = _spec(vs)
            blocks = [(http, ("spec", "routes", http.get("name") or "")) for http in spec.get("http") or []]
            blocks += [(r, ("spec", key, i)) for key in ("tcp", "tls") for i, r in enumerate(spec.get(key) or [])]
            for http, at in blocks:
                dests = [(r.get("destination") or {}, ("to", (r.get("destination") or {}).get("subset")))
                         for r in http.get("route") or []]
                if http.get("mirror"):
                    dests.append((http["mirror"], ("mirror", "version")))
                for dest, field in dests:
                    subset = dest.get("subset")
                    host = fqdn(dest.get("host", ""), _ns(vs))
                    if host not in subsets and _declared_external(self.external_hosts, host):
                        continue  # a host outside the repository: its subsets are not known here
                    if subset and subset not in subsets.get(host, set()) and (host, subset) not in seen:
                        seen.add((host, subset))
                        yield self.finding(
                            "MG101", vs,
                            f"VirtualService {_name(vs)} routes to subset '{subset}' of host "
                            f"{dest.get('host')}, but no DestinationRule for that host defines it",
                            (*at, *field),
                            hint="add the version to the app's versions, or route to an existing one")

    def bindings(self) -> dict[tuple[str, str], list[RenderedObjectLike]]:
        """``{(gateway ref, fqdn host): [VirtualService, ...]}``."""
        bound: dict[tuple[str, str], list[RenderedObjectLike]] = defaultdict(list)
        for vs in self.vss:
            gateways = _spec(vs).get("gateways") or [MESH]
            for gw in gateways:
                ref = gateway_ref(gw, _ns(vs))
                for host in _spec(vs).get("hosts") or []:
                    bound[(ref, fqdn(host, _ns(vs)))].append(vs)
        return bound

    def conflicting_hosts(self) -> Iterable[Finding]:
        """MG102: one host bound by two VirtualServices on one gateway."""
        for (gw, host), bound in sorted(self.bindings().items()):
            vss = list({id(v): v for v in bound}.values())
            if len(vss) < 2:
                continue
            names = ", ".join(sorted(_name(v) for v in vss))
            where = "the mesh" if gw == MESH else f"Gateway {gw}"
            for vs in vss:
                yield self.finding(
                    "MG102", vs,
                    f"VirtualServices {names} all bind host {host} on {where}; Istio merges "
                    f"them in an undefined order", ("spec", "service", "host"),
                    hint="give each host to one app")

    def unrouted_gateway_hosts(self) -> Iterable[Finding]:
        """MG103: a Gateway server host that no VirtualService bound to the Gateway routes."""
        hosts_by_gateway: dict[str, list[str]] = defaultdict(list)
        for g, h in self.bindings():
            hosts_by_gateway[g].append(h)
        for ref, gw in sorted(self.gateways.items()):
            vs_hosts = hosts_by_gateway.get(ref, [])
            for server in _spec(gw).get("servers") or []:
                for raw in server.get("hosts") or []:
                    pattern = server_host(raw)
                    if not any(host_matches(pattern, h) or host_matches(h, pattern) for h in vs_hosts):
                        yield self.finding(
                            "MG103", gw,
                            f"Gateway {_name(gw)} serves host {pattern}, but no VirtualService "
                            f"bound to it routes that host; requests get 404",
                            ("spec", "expose", "hosts"))

    def hosts_not_on_gateway(self) -> Iterable[Finding]:
        """MG104: a VirtualService host that none of its bound Gateways serves."""
        for vs in self.vss:
            refs = [gateway_ref(g, _ns(vs)) for g in _spec(vs).get("gateways") or []]
            gws = [self.gateways[r] for r in refs if r in self.gateways]
            if not gws:
                continue
            served_by = [server_host(h) for g in gws for s in _spec(g).get("servers") or []
                         for h in s.get("hosts") or []]
            for host in _spec(vs).get("hosts") or []:
                full = fqdn(host, _ns(vs))
                if any(host_matches(p, full) for p in served_by):
                    continue
                if MESH in refs and kube_service(full) is not None:
                    continue  # a mesh-internal name, routed by the sidecars
                names = ", ".join(sorted(_name(g) for g in gws))
                yield self.finding(
                    "MG104", vs,
                    f"host {host} of VirtualService {_name(vs)} is served by none of its "
                    f"Gateways ({names})", ("spec", "expose", "hosts"),
                    hint="list the host in the Gateway's servers")

    def missing_gateways(self) -> Iterable[Finding]:
        """MG105: a bound Gateway that this environment does not render."""
        for vs in self.vss:
            for gw in _spec(vs).get("gateways") or []:
                ref = gateway_ref(gw, _ns(vs))
                if ref != MESH and ref not in self.gateways and ref not in self.external_gateways:
                    if ref not in self.declared:
                        yield self.finding(
                            "MG109", vs,
                            f"VirtualService {_name(vs)} binds Gateway {ref}, which nothing in the repository "
                            f"renders and environment {self.env} does not declare", ("spec", "gateways"),
                            hint=f"check the name, or list it in environments/{self.env}.yaml under "
                                 "spec.externalGateways")
                        continue
                    yield self.finding(
                        "MG105", vs,
                        f"VirtualService {_name(vs)} binds Gateway {ref}, which is not rendered "
                        f"in this environment", ("spec", "expose"),
                        hint="make sure the cluster has it, or expose the app through meshgen")


    def duplicate_service_entries(self) -> Iterable[Finding]:
        """MG110: one host declared by two ServiceEntries that one namespace sees."""
        owners: dict[str, list[RenderedObjectLike]] = defaultdict(list)
        for se in self.entries:
            for host in _spec(se).get("hosts") or []:
                owners[fqdn(host, _ns(se))].append(se)
        for host, entries in sorted(owners.items()):
            if len(entries) < 2:
                continue
            # exportTo ["."] in different namespaces: no namespace sees both
            visible = [e for e in entries if (_spec(e).get("exportTo") or ["*"]) != ["."]]
            namespaces = {_ns(e) for e in entries}
            if not visible and len(namespaces) == len(entries):
                continue
            names = ", ".join(sorted(_name(e) for e in entries))
            for se in entries:
                yield self.finding("MG110", se, f"ServiceEntries {names} all declare host {host}; Istio keeps one "
                                                f"of them, by creation time", ("spec", "serviceEntry"),
                                   hint="declare each host in one ServiceEntry")

    def unrouted_destination_rules(self) -> Iterable[Finding]:
        """MG111: a DestinationRule whose host nothing routes to."""
        routed = {fqdn(d.get("host", ""), _ns(vs)) for vs in self.vss for d in _destinations_of(vs)}
        entry_hosts = [fqdn(h, _ns(se)) for se in self.entries for h in _spec(se).get("hosts") or []]
        for dr in self.drs:
            host = fqdn(_spec(dr).get("host", ""), _ns(dr))
            if (host in routed or kube_service(host) is not None
                    or _declared_external(entry_hosts, host) or _declared_external(self.external_hosts, host)):
                continue
            yield self.finding(
                "MG111", dr, f"DestinationRule {_name(dr)} is for host {host}, which no route sends to, no "
                             "ServiceEntry declares and the environment does not list in spec.externalHosts; its "
                             "policy applies to nothing", ("spec", "service", "host"),
                hint="add a serviceEntry for the host, or route to it")

    def l4_routes_off_gateway(self) -> Iterable[Finding]:
        """MG112: a TLS or TCP route on a Gateway port that serves no TLS or TCP."""
        wanted = {"tls": {"TLS"}, "tcp": {"TCP", "TLS", "MONGO", "MYSQL", "REDIS"}}
        for vs in self.vss:
            spec = _spec(vs)
            for key in ("tls", "tcp"):
                for i, route in enumerate(spec.get(key) or []):
                    for block in route.get("match") or [{}]:
                        refs = [gateway_ref(g, _ns(vs)) for g in block.get("gateways") or spec.get("gateways") or []]
                        for ref in refs:
                            gw = self.gateways.get(ref)
                            if gw is None:
                                continue
                            ports = [(s.get("port") or {}) for s in _spec(gw).get("servers") or []]
                            fits = [p for p in ports if str(p.get("protocol", "")).upper() in wanted[key]]
                            if "port" in block:
                                fits = [p for p in fits if p.get("number") == block["port"]]
                            if fits:
                                continue
                            on = f"port {block['port']}" if "port" in block else "any port"
                            yield self.finding(
                                "MG112", vs,
                                f"{key} route {i + 1} of VirtualService {_name(vs)} is bound to Gateway {ref}, "
                                f"which serves no {key.upper()} on {on}; the route never sees a connection",
                                ("spec", key, i),
                                hint=f"add a {'TLS' if key == 'tls' else 'TCP'} server on that port to the Gateway "
                                     "(expose.servers), or fix the match port")

    def unselected_subsets(self) -> Iterable[Finding]:
        """MG106: a subset whose label selector matches none of the app's versions."""
        for dr in self.drs:
            versions = self.versions.get((dr.env, dr.app))
            if versions is None:
                continue
            for subset in _spec(dr).get("subsets") or []:
                selector = subset.get("labels") or {}
                if any(all(labels.get(k) == v for k, v in selector.items())
                       for labels in versions.values()):
                    continue
                wanted = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
                yield self.finding(
                    "MG106", dr,
                    f"subset '{subset.get('name')}' of DestinationRule {_name(dr)} selects pods "
                    f"labelled {wanted}, which no version of app {dr.app} has",
                    ("spec", "versions", subset.get("name") or ""),
                    hint=f"versions of {dr.app}: {', '.join(sorted(versions)) or 'none'}")

    def mtls_host_conflicts(self) -> Iterable[Finding]:
        """MG107: one host reached with and without Istio mutual TLS."""
        modes: dict[str, list[tuple[str, RenderedObjectLike, str, tuple]]] = defaultdict(list)
        for dr in self.drs:
            spec = _spec(dr)
            host = fqdn(spec.get("host", ""), _ns(dr))
            top = _tls_mode(spec.get("trafficPolicy"))
            modes[host].append((top or "unset", dr, f"DestinationRule {_name(dr)}",
                                ("spec", "trafficPolicy", "tls", "mode")))
            for subset in spec.get("subsets") or []:
                mode = _tls_mode(subset.get("trafficPolicy"))
                if mode:
                    modes[host].append((mode, dr, f"subset '{subset.get('name')}' of {_name(dr)}",
                                        ("spec", "versions", subset.get("name") or "", "trafficPolicy",
                                         "tls", "mode")))
        for host, entries in sorted(modes.items()):
            set_modes = [(m, o, w, k) for m, o, w, k in entries if m != "unset"]
            mutual = {m in MUTUAL_MODES for m, _, _, _ in set_modes}
            if len(mutual) < 2:
                continue
            said = "; ".join(f"{w}: {m}" for m, _, w, _ in set_modes)
            by_rule: dict[int, list[tuple[str, RenderedObjectLike, str, tuple]]] = {}
            for entry in set_modes:
                by_rule.setdefault(id(entry[1]), []).append(entry)
            for group in by_rule.values():
                first = group[0]
                # a rule that disagrees with itself: point at the setting that differs from its first
                odd = next((e for e in group if (e[0] in MUTUAL_MODES) != (first[0] in MUTUAL_MODES)), first)
                yield self.finding(
                    "MG107", first[1],
                    f"host {host} is reached both with ISTIO_MUTUAL and without it ({said}); "
                    f"a STRICT PeerAuthentication rejects the plain-text share", odd[3],
                    hint="use one tls mode for every version of a host")

    def mtls_namespace_mix(self) -> Iterable[Finding]:
        """MG108: apps of one namespace split between ISTIO_MUTUAL and other TLS modes."""
        by_ns: dict[str, list[tuple[str, RenderedObjectLike]]] = defaultdict(list)
        for dr in self.drs:
            mode = _tls_mode(_spec(dr).get("trafficPolicy"))
            if mode:
                by_ns[_ns(dr)].append((mode, dr))
        for ns, entries in sorted(by_ns.items()):
            mutual = [o for m, o in entries if m in MUTUAL_MODES]
            other = [(m, o) for m, o in entries if m not in MUTUAL_MODES]
            if not mutual or not other:
                continue
            names = ", ".join(sorted(_name(o) for o in mutual))
            for mode, o in other:
                yield self.finding(
                    "MG108", o,
                    f"DestinationRule {_name(o)} uses tls mode {mode} in namespace {ns}, where "
                    f"{names} use ISTIO_MUTUAL; one namespace-wide PeerAuthentication cannot "
                    f"suit both", ("spec", "trafficPolicy", "tls", "mode"))


def _declared_external(patterns: Iterable[str], host: str) -> bool:
    """Whether ``host`` is one of the declared external host patterns (:func:`host_matches`)."""
    return any(host_matches(p, host) for p in patterns)


def _destinations_of(vs: RenderedObjectLike) -> Iterable[dict]:
    """Every ``destination`` of a VirtualService's http, tcp and tls routes (mirrors included)."""
    spec = _spec(vs)
    for key in ("http", "tcp", "tls"):
        for route in spec.get(key) or []:
            for r in route.get("route") or []:
                yield r.get("destination") or {}
            if key == "http" and route.get("mirror"):
                yield route["mirror"]


# -- Gateway API (MG2xx) ---------------------------------------------------------------------------

def _covers(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether every request ``HTTPRouteMatch`` ``b`` accepts, ``a`` accepts too (conservative:
    ``False`` when unsure, e.g. for regular expressions)."""
    a_kind, a_value = httproute._path(a)
    b_kind, b_value = httproute._path(b)
    if a_kind == "RegularExpression" or b_kind == "RegularExpression":
        if (a_kind, a_value) != (b_kind, b_value):
            return False
    elif a_kind == "Exact":
        if (b_kind, b_value) != ("Exact", a_value):
            return False
    elif not httproute.prefix_matches(a_value, b_value):
        return False
    if a.get("method") and a.get("method") != b.get("method"):
        return False

    def conds(m: dict[str, Any], key: str, fold: bool) -> set[tuple[str, str, str]]:
        return {(str(c.get("name")).lower() if fold else str(c.get("name")), c.get("type") or "Exact",
                 str(c.get("value"))) for c in m.get(key) or []}

    return conds(a, "headers", True) <= conds(b, "headers", True) and \
        conds(a, "queryParams", False) <= conds(b, "queryParams", False)


#: Route kinds MG201-MG205 read (MG204 compares HTTPRoute matches only; TCPRoute and TLSRoute
#: parents and backends are checked as the others').
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute")
#: Why one match has higher precedence than another: the fields of
#: :func:`generator.routing.httproute.precedence`, in order.
_WHY = ("an Exact path beats a prefix or a regular expression", "a longer path wins",
        "a method match wins", "more header matches win", "more query parameter matches win",
        "at equal matches the oldest route (creationTimestamp) wins",
        "at equal matches and age the route first by namespace/name wins", "an earlier rule wins",
        "an earlier match of the rule wins")


def _field_place(o: RenderedObjectLike, *keys: Any) -> Place:
    """Where a field of the object is: ``path:line:col`` of the field when the object was read
    from a file with places (an object with a ``document``, :class:`generator.spec.loader.Document`),
    else the object's own place (for rendered objects, the spec value it comes from)."""
    document = getattr(o, "document", None)
    if document is not None:
        return document.place(*keys)
    return o.place or Place(o.path)


def analyze_gateway_api(objects: Iterable[RenderedObjectLike]) -> list[Finding]:
    """MG201-MG205 over the Gateway API objects among ``objects`` (each environment on its own).

    HTTPRoutes, GRPCRoutes, Gateways, Services, ReferenceGrants and Namespaces are read with
    :mod:`generator.routing.httproute` (the same model as ``meshgen explain --objects``); other
    kinds are ignored. A parent is a Gateway (its listeners) or, for GAMMA, a Service
    (``group: ""``, ``kind: Service``). Findings are placed at the offending field
    (:func:`_field_place`).
    """
    by_env: dict[str, list[RenderedObjectLike]] = defaultdict(list)
    for o in objects:
        if o.kind in (*ROUTE_KINDS, "Gateway", "Service", "ServiceEntry", "ReferenceGrant", "Namespace"):
            by_env[o.env].append(o)
    findings: list[Finding] = []
    for env, env_objects in sorted(by_env.items()):
        index = httproute.Objects.of([o.obj for o in env_objects])
        routes = [o for o in env_objects if o.kind in ROUTE_KINDS]
        for o in routes:
            findings.extend(_route_findings(env, o, index))
        findings.extend(_shadowed_matches(env, [o for o in routes if o.kind == "HTTPRoute"], index))
    return findings


def _service_ports(service: dict[str, Any], key: str = "port") -> list[int] | None:
    """The port numbers of a Service (a ServiceEntry's with ``key="number"``), or ``None`` when
    its object does not list them."""
    ports = (service.get("spec") or {}).get("ports")
    if ports is None:
        return None
    return [int(p[key]) for p in ports if isinstance(p, dict) and str(p.get(key, "")).isdigit()]


def _route_findings(env: str, o: RenderedObjectLike, index: httproute.Objects) -> Iterable[Finding]:
    """MG201-MG203 and MG205 of one route."""
    route = o.obj
    ns, name = httproute.meta(route)
    what = f"{o.kind} {ns}/{name}"

    def finding(code: str, message: str, hint: str, *keys: Any) -> Finding:
        return Finding(message, place=_field_place(o, *keys), hint=hint, code=code, level=CODES[code][0], env=env)

    spec = route.get("spec") or {}
    names = spec.get("hostnames") or []
    for k, ref in enumerate(httproute.parent_refs(route)):
        at = ("spec", "parentRefs", k)
        target = f"{ref['namespace']}/{ref.get('name')}"
        if httproute.is_service_ref(ref):  # GAMMA (GEP-1426): the route applies to calls to the Service, in the mesh
            svc = index.services.get((ref["namespace"], str(ref.get("name"))))
            if svc is None:
                yield finding("MG201", f"{what}: parentRef Service {target} is not among the objects; the mesh route "
                              "attaches nowhere (Istio: parent service not found)",
                              "name the app's Service (its name and namespace), or give the file that defines it",
                              *at, "name")
                continue
            ports = _service_ports(svc)
            if ref.get("port") is not None and ports is not None and int(ref["port"]) not in ports:
                yield finding("MG201", f"{what}: Service {target} has no port {ref['port']} (it has "
                              f"{', '.join(map(str, ports)) or 'none'}); the mesh route attaches nowhere",
                              "name a port of the Service's spec.ports, or leave port out to apply to every port",
                              *at, "port")
            # hostnames are not read for a Service parent: GAMMA implementations infer nothing from them
            # (GEP-1294); Istio serves the mesh route for the Service's own host (route_collections.go)
            continue
        if ref["kind"] == "ServiceEntry" and ref["group"] == httproute.ISTIO_GROUP:  # Istio: a mesh route to its hosts
            entry = index.service_entries.get((ref["namespace"], str(ref.get("name"))))
            if entry is None:
                yield finding("MG201", f"{what}: parentRef ServiceEntry {target} is not among the objects; the mesh "
                              "route attaches nowhere (Istio: parent service not found)",
                              "render the ServiceEntry (spec.serviceEntry of its app), or fix the parentRef's name "
                              "and namespace", *at, "name")
                continue
            numbers = _service_ports(entry, "number") or []
            if ref.get("port") is not None and int(ref["port"]) not in numbers:
                yield finding("MG201", f"{what}: ServiceEntry {target} has no port {ref['port']} (it has "
                              f"{', '.join(map(str, numbers)) or 'none'}); the mesh route attaches nowhere",
                              "name a port of the ServiceEntry's spec.ports, or leave port out to apply to every "
                              "port", *at, "port")
            continue
        if ref["kind"] != "Gateway" or ref["group"] != httproute.GROUP:
            continue
        gw = index.gateways.get((ref["namespace"], str(ref.get("name"))))
        if gw is None:
            yield finding("MG201", f"{what}: parentRef Gateway {target} is not among the objects",
                          "render the Gateway, or fix the parentRef's name and namespace", *at, "name")
            continue
        listeners = [li for li in (gw.get("spec") or {}).get("listeners") or []
                     if ref.get("sectionName") in (None, li.get("name")) and ref.get("port") in (None, li.get("port"))]
        if not listeners:
            field = "sectionName" if ref.get("sectionName") is not None else "port"
            wanted = " ".join(([str(ref["sectionName"])] if ref.get("sectionName") is not None else [])
                              + ([f"port {ref['port']}"] if ref.get("port") is not None else []))
            yield finding("MG201", f"{what}: Gateway {target} has no listener {wanted}",
                          "name a listener the Gateway has (sectionName, port)", *at, field)
            continue
        if names and not any(httproute.intersect(n, li.get("hostname")) for n in names for li in listeners):
            hosts = ", ".join(sorted({str(li.get("hostname")) for li in listeners}))
            yield finding("MG202", f"{what}: hostnames {', '.join(names)} intersect none of Gateway "
                          f"{target}'s listener hostnames ({hosts})",
                          "use a hostname the listener serves, or widen the listener's hostname", "spec", "hostnames")
    for i, rule in enumerate(spec.get("rules") or []):
        refs = [(r, ("spec", "rules", i, "backendRefs", b)) for b, r in enumerate(rule.get("backendRefs") or [])]
        refs += [(f["requestMirror"]["backendRef"], ("spec", "rules", i, "filters", n, "requestMirror", "backendRef"))
                 for n, f in enumerate(rule.get("filters") or [])
                 if f.get("type") == "RequestMirror" and (f.get("requestMirror") or {}).get("backendRef")]
        for ref, at in refs:
            if (ref.get("group") or "") not in ("", "core") or (ref.get("kind") or "Service") != "Service":
                continue
            target = (ref.get("namespace") or ns, str(ref.get("name")))
            if target[0] != ns and not httproute._granted(index, ns, target[0], "Service", target[1], from_kind=o.kind):
                yield finding("MG205", f"{what} rule {i}: backend Service {target[0]}/{target[1]} is in another "
                              f"namespace and no ReferenceGrant there allows {o.kind}s of {ns}",
                              f"add a ReferenceGrant in namespace {target[0]} from {o.kind}s of {ns} to the Service",
                              *at, "namespace")
            elif target not in index.services:
                yield finding("MG203", f"{what} rule {i}: backend Service {target[0]}/{target[1]} does not exist; "
                              "requests routed to it answer 500", "render the Service, or fix the backendRef",
                              *at, "name")


Slot = tuple[Any, ...]
"""Where routes' rules are merged and ordered together: ``("gateway", ns, name, port, hostname)``
(the rules of one Envoy virtual host of a Gateway's port) or ``("service", ns, name, port,
route namespace)`` (GAMMA: the producer routes of the Service's namespace, or the consumer routes
of one other namespace, GEP-1294)."""


def _slots(route: dict[str, Any], index: httproute.Objects) -> list[Slot]:
    """The slots a route's rules are merged in (see :data:`Slot`); none when it attaches nowhere."""
    route_ns, _ = httproute.meta(route)
    names = (route.get("spec") or {}).get("hostnames") or []
    out: list[Slot] = []
    for ref in httproute.parent_refs(route):
        key = (ref["namespace"], str(ref.get("name")))
        if httproute.is_service_ref(ref):
            svc = index.services.get(key)
            if svc is None:
                continue
            ports = [int(ref["port"])] if ref.get("port") is not None else (_service_ports(svc) or [None])
            out += [("service", *key, port, route_ns) for port in ports]
            continue
        gw = index.gateways.get(key) if ref["kind"] == "Gateway" and ref["group"] == httproute.GROUP else None
        for li in ((gw or {}).get("spec") or {}).get("listeners") or []:
            if ref.get("sectionName") not in (None, li.get("name")) or ref.get("port") not in (None, li.get("port")):
                continue
            if not httproute._allowed(li, key[0], route_ns, index):
                continue
            lh = li.get("hostname")
            hosts = [h for h in (httproute.intersect(n, lh) for n in names) if h] if names else [lh or "*"]
            out += [("gateway", *key, li.get("port"), h.lower()) for h in hosts]
    return list(dict.fromkeys(out))


def _slot_name(slot: Slot) -> str:
    if slot[0] == "service":
        return f"Service {slot[1]}/{slot[2]}" + (f" port {slot[3]}" if slot[3] is not None else "")
    return f"Gateway {slot[1]}/{slot[2]} port {slot[3]}" + (f" host {slot[4]}" if slot[4] != "*" else "")


def _shadowed_matches(env: str, routes: list[RenderedObjectLike], index: httproute.Objects) -> Iterable[Finding]:
    """MG204: a match every request of which a match of higher precedence takes, among the rules of
    every route merged in the same slot (Gateway API ``HTTPRouteRule`` precedence across routes,
    ``apis/v1/httproute_types.go``; Istio sorts the converted routes so, ``conversion.go``
    ``sortHTTPRoutes``). Reported when the match is shadowed in every slot its route is in."""
    slots = {id(o): _slots(o.obj, index) or [("route", id(o))] for o in routes}
    entries: dict[Slot, list[tuple[tuple[Any, ...], RenderedObjectLike, int, int]]] = defaultdict(list)
    for o in routes:
        rules = (o.obj.get("spec") or {}).get("rules") or []
        for i, rule in enumerate(rules):
            for j, _ in enumerate(httproute.rule_matches(rule)):
                for slot in slots[id(o)]:
                    entries[slot].append((httproute.precedence(o.obj, i, j), o, i, j))
    shadows: dict[tuple[int, int, int], list[tuple[Slot, RenderedObjectLike, int, int, tuple[Any, ...]]]] = \
        defaultdict(list)
    for slot, items in entries.items():
        items.sort(key=lambda t: t[0])
        for k, (key, o, i, j) in enumerate(items):
            match = httproute.rule_matches(((o.obj.get("spec") or {}).get("rules") or [])[i])[j]
            for key2, o2, i2, j2 in items[:k]:
                other = httproute.rule_matches(((o2.obj.get("spec") or {}).get("rules") or [])[i2])[j2]
                if _covers(other, match):
                    shadows[(id(o), i, j)].append((slot, o2, i2, j2, key2))
                    break
    for o in routes:
        ns, name = httproute.meta(o.obj)
        rules = (o.obj.get("spec") or {}).get("rules") or []
        for i, rule in enumerate(rules):
            for j, _ in enumerate(httproute.rule_matches(rule)):
                found = shadows.get((id(o), i, j)) or []
                if len(found) < len(slots[id(o)]):
                    continue  # taken in some slot
                slot, o2, i2, j2, key2 = found[0]
                key = httproute.precedence(o.obj, i, j)
                why = next((_WHY[n] for n, (a, b) in enumerate(zip(key2, key)) if a != b),
                           "the same route defined twice; the cluster keeps the one applied last")
                if o2 is o:
                    message = (f"{o.kind} {ns}/{name} rule {i} match {j} is never taken: rule {i2} match {j2} has "
                               f"higher precedence and takes every request it would")
                else:
                    ns2, name2 = httproute.meta(o2.obj)
                    message = (f"{o.kind} {ns}/{name} rule {i} match {j} is never taken: {o2.kind} {ns2}/{name2} "
                               f"rule {i2} match {j2} ({_field_place(o2, 'spec', 'rules', i2, 'matches', j2)}), "
                               f"merged with it on {_slot_name(slot)}, has higher precedence ({why}) and takes "
                               "every request it would")
                yield Finding(message, place=_field_place(o, "spec", "rules", i, "matches", j),
                              hint="remove the match, or make it narrower than the other (an Exact path, a longer "
                                   "prefix, a method, more headers or query parameters win)",
                              code="MG204", level=CODES["MG204"][0], env=env)
