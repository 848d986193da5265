"""The Gateway API target: ``Gateway``, ``HTTPRoute``, per-version ``Service`` and more.

Per app of an environment with ``spec.target: gateway-api``:

``Gateway`` (``gateway.networking.k8s.io/v1``), when the app is exposed
    ``<app>-gateway`` in the app's namespace, ``gatewayClassName`` from the environment's
    ``spec.gatewayClassName`` (default ``istio``: Istio provisions the gateway, istio.io
    docs/tasks/traffic-management/ingress/gateway-api). One HTTP listener per exposed host
    (port 80); with ``expose.tls`` one HTTPS listener per host (port 443, TLS terminated with
    the ``credentialName`` Secret) and the HTTP listeners answer with a redirect to https
    (``<app>-https-redirect``, a ``RequestRedirect`` filter).
``HTTPRoute`` ``<app>``
    ``parentRefs``: the app's Service (``kind: Service``, ``group: ""`` -- the mesh, GAMMA,
    gateway-api GEP-1426) and, when exposed, the Gateway. Its rules come from
    :func:`generator.routing.httproute_compiler.compile_rules`: the spec's first-match meaning under the
    Gateway API's precedence, or a placed refusal. With ``expose.paths`` the Gateway gets its
    own ``HTTPRoute`` ``<app>-gateway``, the same rules narrowed to those paths (whole
    segments, as a ``PathPrefix``). The mesh's route is in the Service's namespace: a route
    in the Service's namespace is a producer route, for every client, while one in another
    namespace is a consumer route, for the clients of its own namespace only (GEP-1426;
    istio/istio ``pilot/pkg/networking/core/route/route.go``
    ``buildSidecarVirtualHostsForVirtualService``). So when ``spec.service.host`` is in
    another namespace, ``<app>`` is there and the Gateway's rules are ``<app>-gateway`` in
    the app's namespace.
``Service`` ``<app>-<version>`` per version
    HTTPRoute has no subsets, so each version is a Service selecting that version's labels
    (with the app Service's selector, ``spec.service.selector``, default ``{app: <service>}``:
    a subset is the host's endpoints with those labels, and so is this Service),
    with the app's service port, as the rules' ``backendRefs`` (the ``weight`` of each is the
    spec's weight; the rollout bot steps them as it steps a VirtualService's).
``DestinationRule`` ``<app>-<version>`` per version Service (Istio), when the app or the version has a ``trafficPolicy``
    Istio turns a ``backendRef`` into a route to the backend Service's own host
    (``<app>-<version>.<namespace>.svc.cluster.local``, istio/istio
    ``pilot/pkg/config/kube/gateway/conversion.go`` ``buildHTTPDestination``), and applies the
    DestinationRule whose ``host`` is that host to the traffic (istio.io
    docs/reference/config/networking/destination-rule: "policies that apply to traffic
    intended for a service"). A DestinationRule on the app's host would not reach these
    clusters, so each version Service gets one: the app's ``trafficPolicy`` with the version's
    own fields over it (as a subset's policy overrides the host's).
``GRPCRoute`` instead of the ``HTTPRoute``, when ``spec.service.protocol: grpc``
    the same rules with gRPC method matches (:func:`_grpc_rule`).
``TCPRoute`` / ``TLSRoute`` ``<app>-<route>`` per ``tcp`` / ``tls`` route (``gateway.networking.k8s.io/v1``, standard channel of v1.6.1)
    bound to the app's Service on the route's ``match.port``; a TLSRoute's ``hostnames`` are
    the ``sniHosts``. Routes bound to one port have no order in Gateway API, so routes that can
    take the same connection are refused, as are matches on anything but port and SNI.
``ReferenceGrant`` (``gateway.networking.k8s.io/v1beta1``)
    where a route refers to a Service of another namespace, in that namespace, allowing the
    route's kind (``HTTPRoute``, ``GRPCRoute``, ...: a grant names the kind it lets refer,
    istio/istio ``pilot/pkg/config/kube/gatewaycommon/references.go`` ``BackendAllowed``) from
    the route's namespace to refer to ``Service`` (gateway-api GEP-709): the Gateway's route
    (in the app's namespace) to a Service in another (``referencegrant.yaml``), a route to
    another app's Service (``referencegrant-<namespace>.yaml``).
``ServiceEntry`` (Istio), with ``spec.serviceEntry``
    as the istio target renders it (its template); the routes are bound to it (``parentRefs``
    ``{group: networking.istio.io, kind: ServiceEntry}``) and send to its host as the backend
    ``{group: networking.istio.io, kind: Hostname, name: <host>}``, which Istio resolves in its
    registry (istio.io docs/tasks/traffic-management/egress/egress-gateway, "Gateway API";
    istio/istio ``pilot/pkg/config/kube/gateway/conversion.go`` ``buildDestination``).

Destinations: a route to the app's own host without a version (an app without ``versions``)
sends to the app's Service (and its ``trafficPolicy`` is a DestinationRule of that host, as
the istio target writes it); to another app's host, to that Service (port: the destination's,
else that app's ``service.port``); to any other host, to the ``Hostname`` above
(:meth:`_Plain.backend`). Route fields: ``timeout`` is ``timeouts.request``; ``headers`` the
``RequestHeaderModifier`` / ``ResponseHeaderModifier`` filters; ``mirror`` a ``RequestMirror``
filter (``percent``, or ``fraction`` for a percentage that is not whole); ``rewrite`` a
``URLRewrite`` filter where it means what Istio's rewrite means (:func:`_rewrite`). Refused,
at their place: ``retries`` (the standard channel's HTTPRoute has no retry field), ``fault``,
``corsPolicy``, ``redirect``, ``directResponse``, matches HTTPRoute cannot hold (see
:mod:`generator.routing.httproute_compiler`), ``spec.hosts``, ``spec.gateways``, ``exportTo``
and delegates (:meth:`GatewayApiTarget.refusals`).

Telemetry: a request a route sends to ``backendRef`` ``<app>-<version>`` leaves the client's
proxy (or the gateway) on the cluster ``outbound|<port>||<app>-<version>.<ns>.svc.cluster.local``.
Istio's stats filter (istio/proxy ``source/extensions/filters/http/istio_stats/istio_stats.cc``,
``populatePeerInfo``) takes ``destination_service_name`` from that cluster's ``istio.services``
metadata -- the version's Service -- falling back to the Host header, and
``destination_version`` from the peer's ``version`` label. On the server's side the cluster is
the inbound one, whose first Service may be the app's or the version's (both select the pod),
so the built-in metrics read ``reporter="source"`` series with
``destination_service_name="<app>-<version>"`` (:attr:`GatewayApiTarget.series_reporter`,
:meth:`GatewayApiTarget.series_service`).
"""

from __future__ import annotations


import copy
import functools
import re
from fractions import Fraction
from typing import Any, Mapping, Sequence

from generator.errors import Place, SpecError, SpecErrors, as_yaml
from generator.routing import httproute_compiler as httproute
from generator.routing.compiler import SpecRoute
from generator.routing.httproute import ISTIO_GROUP
from generator.routing.hosts import kube_service
from generator.targets import AppInput, Made, istio

API = "gateway.networking.k8s.io/v1"
GRANT_API = "gateway.networking.k8s.io/v1beta1"
ISTIO_API = "networking.istio.io/v1"
DEFAULT_CLASS = "istio"
_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")  # gateway-api GEP-2257
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")  # PreciseHostname


class _BodyPlaces(Mapping[tuple[int, str], Place | None]):
    """``{(route index, key): place}`` of a spec's route fields other than ``name``, ``when``
    and ``to``, each place looked up when asked for (only a refusal asks)."""

    def __init__(self, given: AppInput, routes: Sequence[Mapping[str, Any]]) -> None:
        self._given = given
        self._keys = [(i, key) for i, route in enumerate(routes) for key in route
                      if key not in ("name", "when", "to")]

    def __getitem__(self, at: tuple[int, str]) -> Place | None:
        if at not in self._keys:
            raise KeyError(at)
        return self._given.key_place("spec", "routes", *at)

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class _Plain:
    """The values of an :class:`AppInput` the objects are built from, and the backends they
    refer to (:meth:`backend`, which notes the namespaces a ReferenceGrant must open)."""

    def __init__(self, given: AppInput) -> None:
        spec = given.spec
        service = spec.get("service") or {}
        self.given = given
        self.name, self.namespace, self.meta, self.host = given.name, given.namespace, given.meta, given.host
        self.entry: Mapping[str, Any] | None = spec.get("serviceEntry")
        entry_ports = [p.get("number") for p in (self.entry or {}).get("ports") or []]
        self.port = service.get("port") or (entry_ports[0] if len(entry_ports) == 1 else None)
        self.versions = {v: {"labels": d.get("labels") or {}, "trafficPolicy": d.get("trafficPolicy")}
                         for v, d in (spec.get("versions") or {}).items()}
        self.traffic_policy = spec.get("trafficPolicy")
        self.expose = spec.get("expose")
        self.gateway_class = given.env_spec.get("gatewayClassName") or DEFAULT_CLASS
        self.selector = service.get("selector")
        self.protocol = service.get("protocol", "http")
        self.place = given.place("metadata", "name")
        self.port_place = given.key_place("spec", "service")
        self.svc_name, self.svc_ns = _svc_parts(self.host, self.namespace)
        self.mesh_parent: dict[str, Any]
        if self.entry is not None:
            # Istio binds a mesh route to a ServiceEntry's hosts (istio.io docs/tasks/traffic-management/
            # egress/egress-gateway, "Gateway API": parentRefs kind ServiceEntry)
            self.mesh_parent = {"group": ISTIO_GROUP, "kind": "ServiceEntry", "name": self.name}
            if self.port:
                self.mesh_parent["port"] = self.port
        else:
            self.mesh_parent = {"group": "", "kind": "Service", "name": self.svc_name, "port": self.port}
        #: the namespace of the mesh's routes: the Service's (a producer route, GEP-1426), or the
        #: app's for a ServiceEntry host
        self.mesh_ns = self.namespace if self.entry is not None else self.svc_ns
        #: ``{namespace: {(route kind, route namespace)}}``: the routes that refer to Services of
        #: another namespace, for the ReferenceGrant there
        self.grants: dict[str, set[tuple[str, str]]] = {}

    def backend(self, dest: Mapping[str, Any], kind: str, route: str, place: Place | None,
                what: str = "route", *, from_ns: str) -> dict[str, Any]:
        """The ``backendRef`` (without ``weight``) of an Istio destination ``{host, subset?, port?}``.

        A version of the app is its Service ``<app>-<version>``; the app's own host without a
        version its Service (a ``serviceEntry`` app's host: the ``Hostname`` below); another
        Kubernetes Service host ``<name>.<namespace>.svc.<domain>`` that Service, its port the
        destination's or that app's ``service.port``; any other host (a ServiceEntry's) the
        backend ``{group: networking.istio.io, kind: Hostname, name: <host>}`` (port likewise),
        which Istio routes
        to the host in its registry, and which must name a port and no namespace (istio/istio
        ``pilot/pkg/config/kube/gateway/conversion.go`` ``buildDestination``: "port is required in
        backendRef for Hostname kind"; istio.io docs/tasks/traffic-management/egress). A route ``kind``
        in namespace ``from_ns`` that crosses namespaces is noted for the ReferenceGrant.

        Raises:
            SpecError: a subset of another host; no port for a Service or host.
        """
        host, subset = str(dest["host"]), dest.get("subset")
        port = (dest.get("port") or {}).get("number")

        def refuse(message: str, hint: str) -> SpecError:
            return SpecError(f"{what} {as_yaml(route)}: {message} (target gateway-api)", place=place, hint=hint)

        ref: dict[str, Any]
        namespace = from_ns
        if host == self.host and subset:
            ref, namespace = {"name": version_service(self.name, subset), "port": self.port}, self.svc_ns
        elif host == self.host and self.entry is None:
            ref, namespace = {"name": self.svc_name, "port": port or self.port}, self.svc_ns
        elif subset:
            raise refuse(f"subset {as_yaml(subset)} of host {host} cannot be a backendRef: HTTPRoute has no subsets, "
                         "and the per-version Services are each app's own",
                         "route to the host itself, or route from that app's spec, or keep spec.target: istio")
        elif (service := kube_service(host)) is not None:
            name, namespace = service
            ref = {"name": name, "port": port or self.given.ports.get(host)}
        else:
            ref = {"group": ISTIO_GROUP, "kind": "Hostname", "name": host}  # no namespace: the registry's host
            port = port or (self.port if host == self.host else self.given.ports.get(host))
            if port:
                ref["port"] = port
            namespace = from_ns
        if ref.get("kind") != "Hostname" and not ref.get("port"):
            raise refuse(f"the destination {host} has no port, and a backendRef to a Service names one",
                         "add port: <the Service's port> to the destination")
        if ref.get("kind") == "Hostname" and not ref.get("port"):
            raise refuse(f"the destination {host} has no port, and Istio needs one for a Hostname backendRef",
                         "add port: <the host's port> to the destination, or spec.service.port to the app")
        if namespace != from_ns:
            ref["namespace"] = namespace
            self.grants.setdefault(namespace, set()).add((kind, from_ns))
        return ref


def _sni_overlap(a: str, b: str) -> bool:
    """Whether one connection's SNI can match both hostnames (``*.`` a leading wildcard)."""
    def covers(w: str, h: str) -> bool:
        return w.startswith("*.") and h.endswith(w[1:]) and len(h) > len(w) - 1
    return a == b or covers(a, b) or covers(b, a)


def _rewrite(rule: httproute.Rule, rewrite: Mapping[str, Any], route: str, place: Place | None) -> dict[str, Any]:
    """An Istio ``rewrite`` as the ``URLRewrite`` filter with the same meaning, or a refusal.

    ``authority`` is the filter's ``hostname``. ``uri`` replaces what the route matched: for
    ``exact`` and ``regex`` paths the whole path (``ReplaceFullPath``); for a ``PathPrefix`` the
    spec's ``uri exact "/p" or uri prefix "/p/"`` pair rewrites ``/p/x`` to ``<uri>x`` while
    ``ReplacePrefixMatch`` keeps the segment boundary (``<uri without a trailing />/x``;
    gateway-api ``apis/v1/httproute_types.go`` ``HTTPPathModifier``), so the two mean the same
    only for ``uri: /`` (strip the prefix), or under ``PathPrefix /`` for a ``uri`` ending in
    ``/``; ``ReplacePrefixMatch`` also needs the rule's one match to be that PathPrefix (the
    CRD's CEL rule).

    Raises:
        SpecError: a ``uriRegexRewrite``, an authority that is not a DNS name, or a ``uri``
            these cases do not cover.
    """
    def refuse(what: str, hint: str) -> SpecError:
        return SpecError(f"route {as_yaml(route)}: {what} cannot be written in an HTTPRoute (target gateway-api)",
                         place=place, hint=hint)

    if rewrite.get("uriRegexRewrite"):
        raise refuse("a uriRegexRewrite", "HTTPRoute's URLRewrite replaces a path prefix or the whole path, not a "
                     "regex; write rewrite.uri, or keep spec.target: istio")
    out: dict[str, Any] = {}
    authority = rewrite.get("authority")
    if authority:
        if not _HOSTNAME.match(str(authority)):
            raise refuse(f"rewrite authority {as_yaml(authority)} (URLRewrite's hostname is a lower-case DNS name "
                         "without a port)", "write the host name alone, or keep spec.target: istio")
        out["hostname"] = authority
    uri = rewrite.get("uri")
    if uri:
        kinds = [m.path[0] for m in rule.matches]
        if all(k in ("Exact", "RegularExpression") for k in kinds):
            out["path"] = {"type": "ReplaceFullPath", "replaceFullPath": uri}
        elif kinds == ["PathPrefix"]:
            prefix = rule.matches[0].path[1]
            if uri != "/" and not (prefix == "/" and uri.endswith("/")):
                stem = uri.rstrip("/") or ""
                raise refuse(f"rewrite uri {as_yaml(uri)} after the PathPrefix {prefix}: Istio rewrites {prefix} "
                             f"to {uri} and {prefix.rstrip('/')}/x to {uri}x, HTTPRoute's ReplacePrefixMatch "
                             f"{prefix} to {stem or '/'} and {prefix.rstrip('/')}/x to {stem}/x",
                             'write rewrite uri "/" to strip the prefix, or keep spec.target: istio')
            out["path"] = {"type": "ReplacePrefixMatch", "replacePrefixMatch": uri}
        else:
            raise refuse("a uri rewrite on a rule with several matches, one a PathPrefix (ReplacePrefixMatch "
                         "needs exactly one PathPrefix match)",
                         'give the rewritten path a route of its own, (uri exact "/p" or uri prefix "/p/") and '
                         "nothing else, before the routes it overlaps, or keep spec.target: istio")
    return {"type": "URLRewrite", "urlRewrite": out}


def _svc_parts(host: str, namespace: str) -> tuple[str, str]:
    """``(name, namespace)`` of the app's Service: :func:`~generator.routing.hosts.kube_service`
    of its host, else the host's first label in the app's ``namespace``."""
    return kube_service(host) or (host.split(".", 1)[0], namespace)


def version_service(app: str, version: str) -> str:
    """Name of the Service of one version: ``<app>-<version>``."""
    return f"{app}-{version}"


class GatewayApiTarget:
    """``spec.target: gateway-api``."""

    name = "gateway-api"
    route_kinds = ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")
    #: The client's proxy (or the gateway) names the cluster's Service, the version's own
    #: (see the module docstring); the server's sidecar would name whichever of the Services
    #: selecting its pod comes first, so the metrics read the client side.
    series_reporter = "source"

    def compile(self, routes: Sequence[SpecRoute], scope: str | None,
                body_places: Mapping[tuple[int, str], Place] | None = None,
                memo: dict[Any, Any] | None = None) -> list[httproute.Rule]:
        """HTTPRoute rules (:func:`generator.routing.httproute_compiler.compile_rules`), new
        objects on every call (each rule's ``body`` is the given route's own).

        With ``memo`` (:attr:`generator.targets.AppInput.memo`, one per render), compiled once
        per distinct key: an app in every environment its overrides leave alone, and apps
        written alike, compile the same route list again and again. The key is the ``repr``
        (which tells ``1`` from ``"1"``, ``1.0`` and ``True``) of what the compiler reads: the
        scope, each route's name, ``when`` and body keys (a key HTTPRoute cannot carry is
        refused), and which routes have equal bodies (a rule keeps the requests a later rule
        of an equal body would take, ``_keep_first_match``); the bodies themselves are only
        handed through, so apps whose routes differ only in their hosts share one compile.
        Places take no part in a compiled result, only in refusals, which are never kept: a
        list refused is compiled (and refused, at its own places) every time.

        Raises:
            SpecErrors: as :func:`~generator.routing.httproute_compiler.compile_rules`.
        """
        if memo is None:
            return httproute.compile_rules(routes, scope=scope, body_places=body_places)
        bodies = [r.body for r in routes]
        key = ("httproute rules", repr((scope, [(r.name, r.when, tuple(r.body)) for r in routes],
                                        [bodies.index(b) for b in bodies])))
        kept = memo.get(key)
        if kept is None:
            rules = httproute.compile_rules(routes, scope=scope, body_places=body_places)
            memo[key] = [(r.name, r.spec_index, tuple(r.matches)) for r in rules]
            return rules
        return [httproute.Rule(name, index, list(matches), routes[index].body) for name, index, matches in kept]

    # -- objects ------------------------------------------------------------------------------
    def refusals(self, spec: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
        """What Gateway API objects cannot carry at all: VirtualService ``hosts`` and
        ``gateways`` (an HTTPRoute's are its parentRefs and hostnames, which meshgen derives
        from the Service and ``expose``), ``exportTo`` (no Gateway API field) and delegates."""
        found: list[tuple[tuple[Any, ...], str]] = []
        for key, words in (("hosts", "spec.hosts"), ("gateways", "spec.gateways"), ("exportTo", "exportTo"),
                           ("delegate", "a delegate")):
            if spec.get(key):
                found.append((("spec", key), words))
        for i, route in enumerate(spec.get("routes") or []):
            if "delegate" in route:
                found.append((("spec", "routes", i, "delegate"), f"route {as_yaml(route.get('name'))}'s delegate"))
        return found

    def objects(self, given: AppInput) -> list[Made]:
        """The app's objects in file order (see the module docstring).

        Raises:
            SpecErrors: every route or field these objects cannot carry (placed), no service
                port, a version Service name that is not a DNS label.
        """
        spec = given.spec
        routes = given.routes
        body_places = _BodyPlaces(given, spec.get("routes") or [])
        app = _Plain(given)
        if app.entry is not None and app.versions:
            raise SpecError(f"app {as_yaml(app.name)}: versions of a serviceEntry host cannot be written as "
                            "per-version Services (target gateway-api)", place=given.key_place("spec", "versions"),
                            hint="route to the ServiceEntry host without versions, or keep spec.target: istio")
        if not app.port and app.entry is None:
            raise SpecError(f"app {as_yaml(app.name)}: the gateway-api target needs spec.service.port "
                            "(the per-version Services and backendRefs name it)", place=app.port_place,
                            hint="add spec.service.port (the port of the app's Service)")
        for version in app.versions:
            name = version_service(app.name, version)
            if len(name) > 63 or not _DNS_LABEL.match(name):
                raise SpecError(f"app {as_yaml(app.name)}: version Service {as_yaml(name)} is not a DNS-1035 "
                                "label of at most 63 characters", place=app.place,
                                hint="shorten the app or version name")
        svc_name, svc_ns = app.svc_name, app.svc_ns
        out: list[tuple[str, str, dict[str, Any]]] = []
        expose = app.expose or {}
        paths = expose.get("paths") or []
        errors: list[SpecError] = []
        http = bool(routes) or not any(given.l4.get(k) for k in ("tcp", "tls"))
        rules = self.compile(routes, None, body_places, given.memo) if http else []
        stem = "grpcroute" if app.protocol == "grpc" else "httproute"
        # the mesh's route lives in the Service's namespace: a producer route, which GAMMA applies
        # to every client (a route in another namespace is a consumer route, for the clients of
        # that namespace only: gateway-api GEP-1426; istio/istio pilot/pkg/networking/core/route/
        # route.go buildSidecarVirtualHostsForVirtualService)
        mesh_ns = app.mesh_ns
        gw = f"{app.name}-gateway"
        hosts = list(expose.get("hosts") or [])
        tls = expose.get("tls")
        gw_parents = ([{"name": gw, "sectionName": f"https-{i}"} for i in range(len(hosts))] if tls
                      else [{"name": gw}]) if expose else []
        if http and expose and (paths or mesh_ns != app.namespace):
            gw_rules = rules
            if paths:
                scope = " or ".join(f'(uri exact {_q(p.rstrip("/") or "/")} or uri prefix {_q(p.rstrip("/") + "/")})'
                                    for p in paths)
                gw_rules = self.compile(routes, scope, body_places, given.memo)
            for file, obj in ((f"{stem}.yaml", self._route(app, app.name, [app.mesh_parent], [], rules, routes, errors,
                                                            mesh_ns)),
                              (f"{stem}-gateway.yaml", self._route(app, f"{app.name}-gateway", gw_parents, hosts,
                                                                   gw_rules, routes, errors, app.namespace))):
                out.append((obj["kind"], file, obj))
        elif http:  # an app with tcp or tls routes only has no HTTPRoute, as it has no VirtualService http
            obj = self._route(app, app.name, [app.mesh_parent, *gw_parents], hosts if expose else [], rules, routes,
                              errors, mesh_ns)
            out.append((obj["kind"], f"{stem}.yaml", obj))
        if expose:
            out.append(("Gateway", "gateway.yaml", self._gateway(app, gw, hosts, tls)))
            if tls:
                out.append(("HTTPRoute", "httproute-https-redirect.yaml", self._redirect(app, gw, hosts)))
        for key in ("tcp", "tls"):
            out.extend(self._l4_routes(app, key, errors))
        SpecErrors.collect(list({e.format(): e for e in errors}.values()))
        for version, v in sorted(app.versions.items()):
            name = version_service(app.name, version)
            out.append(("Service", f"service-{version}.yaml", {
                "apiVersion": "v1", "kind": "Service", "metadata": self._meta(app, name, svc_ns),
                "spec": {"selector": {**(app.selector or {"app": svc_name}), **v["labels"]},
                         "ports": [{"name": f"http-{app.port}", "port": app.port, "protocol": "TCP"}]}}))
            policy = {**(app.traffic_policy or {}), **(v.get("trafficPolicy") or {})}
            if policy:
                out.append(("DestinationRule", f"destinationrule-{version}.yaml", {
                    "apiVersion": ISTIO_API, "kind": "DestinationRule", "metadata": self._meta(app, name, svc_ns),
                    "spec": {"host": f"{name}.{svc_ns}.svc.cluster.local", "trafficPolicy": policy}}))  # one use per document: no YAML alias
        if not app.versions and app.traffic_policy:  # the app's own host, as the istio target writes it
            out.append(("DestinationRule", "destinationrule.yaml", {
                "apiVersion": ISTIO_API, "kind": "DestinationRule",
                "metadata": self._meta(app, app.name, app.namespace),
                "spec": {"host": app.host, "trafficPolicy": dict(app.traffic_policy)}}))
        for ns, kinds in sorted(app.grants.items()):
            out.append(("ReferenceGrant", "referencegrant.yaml" if ns == svc_ns else f"referencegrant-{ns}.yaml", {
                "apiVersion": GRANT_API, "kind": "ReferenceGrant",
                "metadata": self._meta(app, f"{app.name}-from-{app.namespace}", ns),
                "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": kind, "namespace": from_ns}
                                  for kind, from_ns in sorted(kinds)],
                         "to": [{"group": "", "kind": "Service"}]}}))
        meta_place = app.place
        places = {"Gateway": given.key_place("spec", "expose")} if expose else {}
        policy_place = given.key_place("spec", "trafficPolicy")
        made = [istio.service_entry(given)] if app.entry is not None else []
        return made + [Made(kind, file, places.get(kind, meta_place), obj=obj,
                            problem_place=policy_place if kind == "DestinationRule" else None)
                       for kind, file, obj in out]

    @staticmethod
    def _meta(app: _Plain, name: str, namespace: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(app.meta["labels"])}
        if app.meta.get("annotations"):
            meta["annotations"] = dict(app.meta["annotations"])
        return meta

    def _route(self, app: _Plain, name: str, parents: list[dict[str, Any]], hostnames: list[str],
               rules: list[httproute.Rule], routes: Sequence[SpecRoute], errors: list[SpecError],
               namespace: str) -> dict[str, Any]:
        kind = "GRPCRoute" if app.protocol == "grpc" else "HTTPRoute"
        made = []
        for r in rules:
            try:
                rule = self._rule(app, r, kind, routes[r.spec_index].name, namespace)
                made.append(_grpc_rule(rule, r, routes) if kind == "GRPCRoute" else rule)
            except SpecError as e:
                errors.append(e)
        spec: dict[str, Any] = {"parentRefs": parents, "rules": made}
        if hostnames:
            spec["hostnames"] = hostnames
        return {"apiVersion": API, "kind": kind, "metadata": self._meta(app, name, namespace),
                "spec": spec}

    def _rule(self, app: _Plain, rule: httproute.Rule, kind: str, route_name: str, namespace: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": rule.name, "matches": [m.to_object() for m in rule.matches]}

        def where(key: str) -> Place | None:
            return app.given.key_place("spec", "routes", rule.spec_index, key)

        body = rule.body
        refs = []
        to_place = where("to") if body.get("route") else None
        for d in body.get("route") or []:
            ref = app.backend(d["destination"], kind, route_name, to_place, from_ns=namespace)
            ref["weight"] = int(d.get("weight", 100))
            refs.append(ref)
        out["backendRefs"] = refs
        if "timeout" in body:
            out["timeouts"] = {"request": _duration(body["timeout"])}
        filters = []
        headers = body.get("headers") or {}
        for side, kind_ in (("request", "RequestHeaderModifier"), ("response", "ResponseHeaderModifier")):
            ops = headers.get(side) or {}
            if ops:
                mod: dict[str, Any] = {}
                for op in ("set", "add"):
                    if ops.get(op):
                        mod[op] = [{"name": k, "value": str(v)} for k, v in sorted(ops[op].items())]
                if ops.get("remove"):
                    mod["remove"] = list(ops["remove"])
                key = kind_[0].lower() + kind_[1:]
                filters.append({"type": kind_, key: mod})
        if body.get("rewrite"):
            filters.append(_rewrite(rule, body["rewrite"], route_name, where("rewrite")))
        if body.get("mirror"):
            mirror: dict[str, Any] = {"backendRef": app.backend(body["mirror"], kind, route_name, where("mirror"),
                                                                   from_ns=namespace)}
            percent = (body.get("mirrorPercentage") or {}).get("value")
            if percent is not None and percent != 100:
                if float(percent).is_integer():
                    mirror["percent"] = int(percent)
                else:  # gateway-api GEP-3171: a fraction where the percent is not whole
                    share = Fraction(str(percent)) / 100
                    mirror["fraction"] = {"numerator": share.numerator, "denominator": share.denominator}
            filters.append({"type": "RequestMirror", "requestMirror": mirror})
        if filters:
            out["filters"] = filters
        return out

    def _l4_routes(self, app: _Plain, key: str, errors: list[SpecError]) -> list[tuple[str, str, dict[str, Any]]]:
        """The app's ``tcp`` (``key``) routes as ``TCPRoute`` objects, its ``tls`` routes as
        ``TLSRoute`` objects, one per spec route, bound to the app's Service (GAMMA) on the
        matched port. Gateway API gives routes bound to one port no order, so routes that can
        take the same connection are refused, as are matches other than port and SNI."""
        kind = "TCPRoute" if key == "tcp" else "TLSRoute"
        allowed = ("port",) if key == "tcp" else ("port", "sniHosts")
        out: list[tuple[str, str, dict[str, Any]]] = []
        seen: list[tuple[int | None, list[str], str]] = []
        for i, route in enumerate(app.given.l4.get(key) or []):
            name = route["name"]

            def at(*keys: Any, i: int = i) -> Place | None:
                return app.given.key_place("spec", key, i, *keys)

            def refuse(what: str, hint: str, place: Place | None) -> SpecError:
                return SpecError(f"{key} route {as_yaml(name)}: {what} (target gateway-api)", place=place, hint=hint)

            blocks = route.get("match") or [{}]
            bad = [(j, f) for j, block in enumerate(blocks) for f in block if f not in allowed]
            if bad:
                j, field = bad[0]
                errors.append(refuse(f"a {field} match cannot be written in a {kind}, which matches "
                                     + ("the port only" if key == "tcp" else "the port and SNI hostnames only"),
                                     f"drop {field} from the match, or keep spec.target: istio", at("match", j, field)))
                continue
            ports = {block.get("port") for block in blocks}
            if len(ports) > 1:
                errors.append(refuse(f"match blocks on different ports cannot be one {kind} (a route binds to one "
                                     "port of the Service)", "write one route per port", at("match")))
                continue
            port = ports.pop()
            hostnames = list(dict.fromkeys(h for block in blocks for h in block.get("sniHosts") or []))
            clash = next((other for p, hosts, other in seen if p is None or port is None or p == port
                          if key == "tcp" or any(_sni_overlap(a, b) for a in hostnames for b in hosts)), None)
            if clash is not None:
                errors.append(refuse(f"it can take the connections of {key} route {as_yaml(clash)}, and {kind}s "
                                     "bound to one port have no order (the spec's first match cannot be kept)",
                                     f"give each {key} route its own port"
                                     + (" or SNI hostnames" if key == "tls" else "") + ", or keep spec.target: istio",
                                     at("match") if route.get("match") else at()))
                continue
            seen.append((port, hostnames, name))
            parent = {k: v for k, v in app.mesh_parent.items() if k != "port"}
            if port:
                parent["port"] = port
            try:
                refs = []
                for d in route.get("route") or []:
                    ref = app.backend(d["destination"], kind, name, at("to"), what=f"{key} route",
                                      from_ns=app.mesh_ns)
                    ref["weight"] = int(d.get("weight", 100))
                    refs.append(ref)
            except SpecError as e:
                errors.append(e)
                continue
            spec: dict[str, Any] = {"parentRefs": [parent], "rules": [{"name": name, "backendRefs": refs}]}
            if hostnames:
                spec["hostnames"] = hostnames
            out.append((kind, f"{kind.lower()}-{name}.yaml", {
                "apiVersion": API, "kind": kind, "metadata": self._meta(app, f"{app.name}-{name}", app.mesh_ns),
                "spec": spec}))
        return out

    def _gateway(self, app: _Plain, name: str, hosts: list[str], tls: Mapping[str, Any] | None) -> dict[str, Any]:
        listeners = []
        for i, host in enumerate(hosts):
            listeners.append({"name": f"http-{i}", "hostname": host, "port": 80, "protocol": "HTTP"})
            if tls:
                listeners.append({"name": f"https-{i}", "hostname": host, "port": 443, "protocol": "HTTPS",
                                  "tls": {"mode": "Terminate", "certificateRefs": [
                                      {"kind": "Secret", "name": tls["credentialName"]}]}})
        return {"apiVersion": API, "kind": "Gateway", "metadata": self._meta(app, name, app.namespace),
                "spec": {"gatewayClassName": app.gateway_class, "listeners": listeners}}

    def _redirect(self, app: _Plain, gw: str, hosts: list[str]) -> dict[str, Any]:
        return {"apiVersion": API, "kind": "HTTPRoute",
                "metadata": self._meta(app, f"{app.name}-https-redirect", app.namespace),
                "spec": {"parentRefs": [{"name": gw, "sectionName": f"http-{i}"} for i in range(len(hosts))],
                         "hostnames": hosts,
                         "rules": [{"filters": [{"type": "RequestRedirect",
                                                 "requestRedirect": {"scheme": "https", "statusCode": 301}}]}]}}

    # -- weights ------------------------------------------------------------------------------
    def weights(self, obj: Mapping[str, Any]) -> dict[str, dict[str, int]]:
        """``{rule name: {version: weight}}`` read from ``backendRefs`` (``<app>-<version>``)."""
        app = (obj.get("metadata") or {}).get("labels", {}).get("app.kubernetes.io/name", "")
        out: dict[str, dict[str, int]] = {}
        for rule in (obj.get("spec") or {}).get("rules") or []:
            refs = rule.get("backendRefs") or []
            if refs:
                out[rule.get("name", "")] = {_version_of(app, r["name"]): int(r.get("weight", 1)) for r in refs}
        return out

    def set_weights(self, obj: dict[str, Any], route: str, split: Mapping[str, int]) -> None:
        from generator.routing.compiler import spec_route_name

        app = (obj.get("metadata") or {}).get("labels", {}).get("app.kubernetes.io/name", "")
        for rule in (obj.get("spec") or {}).get("rules") or []:
            refs = rule.get("backendRefs") or []
            if refs and spec_route_name(rule.get("name", "")) == route:
                template = {k: v for k, v in refs[0].items() if k not in ("name", "weight")}
                rule["backendRefs"] = [{**template, "name": version_service(app, v), "weight": w}
                                       for v, w in sorted(split.items()) if w]

    def series_service(self, service: str, app: str, version: str) -> str:
        """``<app>-<version>``: the backend Service the route sends the version's traffic to."""
        return version_service(app, version)

    # -- explain ------------------------------------------------------------------------------
    def as_virtual_service(self, objects: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The app's routes as the one VirtualService Istio converts them into.

        Istio turns each match of each rule into one route and sorts them by the Gateway API
        precedence (conversion.go ``sortHTTPRoutes``); a ``PathPrefix /p`` becomes the two
        blocks ``exact /p`` and ``prefix /p/`` (whole segments), ranked as the prefix. A
        route bound to the Service (or ServiceEntry) is bound to ``mesh``; one bound to the
        Gateway to ``<namespace>/<gateway>``; a ``backendRef`` to a version Service of the app
        (``<app>-<version>``) is the subset ``<version>`` of the app's host, to another Service
        that Service's host, to a ``Hostname`` that host (conversion.go ``buildDestination``).
        Filters become the route's ``headers``, ``rewrite`` and ``mirror``/``mirrorPercentage``
        (conversion.go ``createHeadersFilter``, ``createRewriteFilter``, ``createMirrorFilter``);
        a ``ReplacePrefixMatch`` splits the prefix's two blocks into two routes, since Istio's
        prefix rewrite of ``/p/`` must keep the ``/``. TCPRoutes and TLSRoutes become the
        ``tcp`` and ``tls`` routes (conversion.go ``convertTCPRoute``, ``convertTLSRoute``).
        """
        routes = [o for o in objects if o.get("kind") in ("HTTPRoute", "GRPCRoute")
                  and not o["metadata"]["name"].endswith("-https-redirect")]
        l4_routes = [o for o in objects if o.get("kind") in ("TCPRoute", "TLSRoute")]
        main = (routes or l4_routes)[0]
        app = main["metadata"]["labels"].get("app.kubernetes.io/name", "")
        ns = main["metadata"]["namespace"]
        versions = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects if o.get("kind") == "Service"}
        entries = {o["metadata"]["name"]: (o.get("spec") or {}).get("hosts") or [] for o in objects
                   if o.get("kind") == "ServiceEntry"}
        gateways: dict[str, Any] = {}
        for o in objects:
            if o.get("kind") == "Gateway":
                servers = []
                for listener in (o.get("spec") or {}).get("listeners") or []:
                    server: dict[str, Any] = {"port": {"number": listener["port"], "name": listener["name"],
                                                       "protocol": listener["protocol"]},
                                              "hosts": [listener.get("hostname", "*")]}
                    servers.append(server)
                gateways[f"{o['metadata']['namespace']}/{o['metadata']['name']}"] = {
                    "apiVersion": ISTIO_API, "kind": "Gateway", "metadata": dict(o["metadata"]),
                    "spec": {"servers": servers}}
        host = ""

        def parents(route: Mapping[str, Any]) -> list[str]:
            nonlocal host
            bound = []
            route_ns = route["metadata"]["namespace"]
            for parent in route["spec"].get("parentRefs") or []:
                if parent.get("kind") == "Service":
                    host = f"{parent['name']}.{parent.get('namespace', route_ns)}.svc.cluster.local"
                    bound.append("mesh")
                elif parent.get("kind") == "ServiceEntry":
                    host = (entries.get(parent["name"]) or [parent["name"]])[0]
                    bound.append("mesh")
                else:
                    bound.append(f"{parent.get('namespace', route_ns)}/{parent['name']}")
            return list(dict.fromkeys(bound))

        def destination(ref: Mapping[str, Any], route_ns: str) -> dict[str, Any]:
            ref_ns = ref.get("namespace", route_ns)
            port = {"port": {"number": ref["port"]}} if ref.get("port") else {}
            if ref.get("kind") == "Hostname":
                return {"host": ref["name"], **port}
            if (ref_ns, ref["name"]) in versions:
                return {"host": host, "subset": _version_of(app, ref["name"]), **port}
            return {"host": f"{ref['name']}.{ref_ns}.svc.cluster.local", **port}

        for route in (*routes, *l4_routes):  # the mesh parent names the host, whichever route is read first
            parents(route)
        flat: list[tuple[Any, int, dict[str, Any]]] = []
        all_gateways: list[str] = []
        for route in routes:
            bound = parents(route)
            all_gateways.extend(b for b in bound if b not in all_gateways)
            for r_index, rule in enumerate(route["spec"].get("rules") or []):
                for m_index, match in enumerate(rule.get("matches") or [{}]):
                    if route["kind"] == "GRPCRoute":
                        match = _http_of_grpc(match)
                    m = _as_match(match)
                    blocks = _istio_blocks(match)
                    for block in blocks:
                        block["gateways"] = bound
                    entry: dict[str, Any] = {"name": rule.get("name", f"rule-{r_index}"), "match": blocks}
                    entry["route"] = [{"destination": destination(ref, route["metadata"]["namespace"]),
                                        "weight": int(ref.get("weight", 1))}
                                      for ref in rule.get("backendRefs") or []]
                    if "timeouts" in rule:
                        entry["timeout"] = rule["timeouts"].get("request")
                    prefix_rewrite = _filters(rule, entry,
                                              functools.partial(destination, route_ns=route["metadata"]["namespace"]))
                    if prefix_rewrite is not None and len(blocks) == 2:  # exact /p, then prefix /p/
                        stem = prefix_rewrite.rstrip("/")
                        first = {**copy.deepcopy(entry), "match": [blocks[0]]}
                        first["rewrite"]["uri"] = stem or "/"
                        entry["match"] = [blocks[1]]
                        entry["rewrite"]["uri"] = stem + "/"
                        flat.append((m.rank(), len(flat), first))
                    flat.append((m.rank(), len(flat), entry))
        flat.sort(key=lambda t: (tuple(-x for x in t[0]), t[1]))
        l4: dict[str, list[dict[str, Any]]] = {"tcp": [], "tls": []}
        for route in l4_routes:
            bound = parents(route)
            all_gateways.extend(b for b in bound if b not in all_gateways)
            block: dict[str, Any] = {}
            port = next((p.get("port") for p in route["spec"].get("parentRefs") or [] if p.get("port")), None)
            if port:
                block["port"] = port
            if route["kind"] == "TLSRoute":
                block["sniHosts"] = list(route["spec"].get("hostnames") or [])
            for rule in route["spec"].get("rules") or []:
                entry = {"route": [{"destination": destination(ref, route["metadata"]["namespace"]),
                                    "weight": int(ref.get("weight", 1))}
                                   for ref in rule.get("backendRefs") or []]}
                if block:
                    entry["match"] = [dict(block)]
                l4["tcp" if route["kind"] == "TCPRoute" else "tls"].append(entry)
        hosts = [host] + [h for r in routes for h in r["spec"].get("hostnames") or []]
        vs = {"apiVersion": ISTIO_API, "kind": "VirtualService",
              "metadata": {"name": app, "namespace": ns, "labels": dict(main["metadata"]["labels"])},
              "spec": {"hosts": list(dict.fromkeys(hosts)), "http": [e for _, _, e in flat]}}
        for key in ("tcp", "tls"):
            if l4[key]:
                vs["spec"][key] = l4[key]
        if all_gateways != ["mesh"]:
            vs["spec"]["gateways"] = all_gateways
        else:  # the mesh alone: a VirtualService without gateways, as the Istio target writes it
            for entry in vs["spec"]["http"]:
                for block in entry["match"]:
                    del block["gateways"]
        return vs, gateways


def _filters(rule: Mapping[str, Any], entry: dict[str, Any], destination: Any) -> str | None:
    """A rule's filters as the Istio route fields they become (conversion.go); returns the
    ``replacePrefixMatch`` of a ``URLRewrite``, if any."""
    prefix = None
    for f in rule.get("filters") or []:
        kind = f.get("type")
        if kind in ("RequestHeaderModifier", "ResponseHeaderModifier"):
            mod = f.get(kind[0].lower() + kind[1:]) or {}
            ops: dict[str, Any] = {}
            for op in ("set", "add"):
                if mod.get(op):
                    ops[op] = {h["name"]: h["value"] for h in mod[op]}
            if mod.get("remove"):
                ops["remove"] = list(mod["remove"])
            entry.setdefault("headers", {})["request" if kind == "RequestHeaderModifier" else "response"] = ops
        elif kind == "URLRewrite":
            r = f.get("urlRewrite") or {}
            rewrite: dict[str, Any] = {}
            if r.get("hostname"):
                rewrite["authority"] = r["hostname"]
            path = r.get("path") or {}
            if path.get("type") == "ReplaceFullPath":
                rewrite["uri"] = path["replaceFullPath"]
            elif path.get("type") == "ReplacePrefixMatch":
                rewrite["uri"] = prefix = path["replacePrefixMatch"]
            entry["rewrite"] = rewrite
        elif kind == "RequestMirror":
            m = f.get("requestMirror") or {}
            entry["mirror"] = destination(m["backendRef"])
            if "percent" in m:
                entry["mirrorPercentage"] = {"value": float(m["percent"])}
            elif "fraction" in m:
                fraction = m["fraction"]
                entry["mirrorPercentage"] = {"value": float(Fraction(fraction["numerator"],
                                                                     fraction.get("denominator", 100)) * 100)}
    return prefix


def _grpc_rule(rule: dict[str, Any], compiled: httproute.Rule, routes: Sequence[SpecRoute]) -> dict[str, Any]:
    """An HTTPRoute rule as a ``GRPCRoute`` rule: a gRPC request is ``POST /<service>/<method>``,
    so an ``Exact`` path ``/S/M`` is the method match ``{service: S, method: M}`` and a
    ``PathPrefix /S`` the service match ``{service: S}`` (Istio converts them back into exactly
    those paths and ranks them alike, conversion.go ``createGRPCURIMatch``).

    Raises:
        SpecError: a match or field a GRPCRoute cannot carry (placed at the route's ``when``; for
            a guard rule carrying the route without ``when``, at the guarded route's).
    """
    route = httproute.placed_route(compiled, routes)

    def refuse(what: str, hint: str) -> SpecError:
        return SpecError(f"route {as_yaml(route.name)}: {what} cannot be written in a GRPCRoute "
                         "(target gateway-api, service.protocol grpc)", place=route.place, hint=hint)

    out: dict[str, Any] = {k: v for k, v in rule.items() if k not in ("matches", "timeouts")}
    if "timeouts" in rule:
        raise refuse("a timeout", "GRPCRoute has no timeouts; drop timeout here or keep spec.target: istio")
    if any(f.get("type") == "URLRewrite" for f in rule.get("filters") or []):
        raise refuse("a rewrite", "GRPCRoute has no URLRewrite filter; drop rewrite here or keep spec.target: istio")
    matches = []
    for m in rule["matches"]:
        if m.get("queryParams") or m.get("method"):
            raise refuse("a query or HTTP method match", "match the gRPC method by path: uri exact \"/pkg.Service/Method\"")
        kind, value = m["path"]["type"], m["path"]["value"]
        parts = value.strip("/").split("/")
        out_match: dict[str, Any] = {}
        if kind == "Exact" and len(parts) == 2 and all(parts):
            out_match["method"] = {"type": "Exact", "service": parts[0], "method": parts[1]}
        elif kind == "PathPrefix" and value.strip("/") and len(parts) == 1:
            out_match["method"] = {"type": "Exact", "service": parts[0]}
        elif not (kind == "PathPrefix" and not value.strip("/")):
            raise refuse(f"the path match {kind} {value}",
                         'write uri exact "/pkg.Service/Method", or (uri exact "/pkg.Service" or uri prefix '
                         '"/pkg.Service/") for a whole service')
        if m.get("headers"):
            out_match["headers"] = m["headers"]
        matches.append(out_match)
    out["matches"] = matches
    return out


def _http_of_grpc(match: Mapping[str, Any]) -> dict[str, Any]:
    """A ``GRPCRouteMatch`` as the HTTPRoute match it is (Istio's conversion)."""
    out: dict[str, Any] = {}
    method = match.get("method") or {}
    if method.get("method"):
        out["path"] = {"type": "Exact", "value": f"/{method['service']}/{method['method']}"}
    elif method.get("service"):
        out["path"] = {"type": "PathPrefix", "value": f"/{method['service']}"}
    if match.get("headers"):
        out["headers"] = match["headers"]
    return out


def _version_of(app: str, service: str) -> str:
    return service[len(app) + 1:] if app and service.startswith(app + "-") else service


def _as_match(match: Mapping[str, Any]) -> httproute.Match:
    path = match.get("path") or {"type": "PathPrefix", "value": "/"}
    return httproute.Match((path.get("type", "PathPrefix"), path.get("value", "/")), match.get("method"),
                           tuple(sorted((h["name"].lower(), h.get("type", "Exact"), h["value"])
                                        for h in match.get("headers") or [])),
                           tuple(sorted((q["name"], q.get("type", "Exact"), q["value"])
                                        for q in match.get("queryParams") or [])))


def _istio_blocks(match: Mapping[str, Any]) -> list[dict[str, Any]]:
    m = _as_match(match)
    base: dict[str, Any] = {}
    if m.method:
        base["method"] = {"exact": m.method}
    if m.headers:
        base["headers"] = {n: {"exact" if t == "Exact" else "regex": v} for n, t, v in m.headers}
    if m.query:
        base["queryParams"] = {n: {"exact" if t == "Exact" else "regex": v} for n, t, v in m.query}
    kind, value = m.path
    if kind == "Exact":
        return [{**base, "uri": {"exact": value}}]
    if kind == "RegularExpression":
        return [{**base, "uri": {"regex": value}}]
    stem = value.rstrip("/")
    if not stem:
        return [{**base, "uri": {"prefix": "/"}}]
    return [{**base, "uri": {"exact": stem}}, {**copy.deepcopy(base), "uri": {"prefix": stem + "/"}}]


def _duration(value: str) -> str:
    """A spec duration (``10s``, ``1.5s``, ``250ms``) as a Gateway API Duration (GEP-2257)."""
    if _DURATION.match(value):
        return value
    m = re.fullmatch(r"(\d+)\.(\d+)s", value)
    if m:
        ms = int(m.group(1)) * 1000 + int((m.group(2) + "000")[:3])
        return f"{ms}ms"
    return value


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


TARGET = GatewayApiTarget()
