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
``ReferenceGrant`` (``gateway.networking.k8s.io/v1beta1``)
    where the app is exposed and the Service (``spec.service.host`` in another namespace) is
    not in the app's namespace: in the Service's namespace, allowing ``HTTPRoute`` (``GRPCRoute`` for a gRPC
    service: a grant names the kind it lets refer) from the app's namespace to refer to
    ``Service`` (gateway-api GEP-709).

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
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from generator.errors import Place, SpecError, as_yaml
from generator.routing import httproute_compiler as httproute
from generator.routing.compiler import SpecRoute

API = "gateway.networking.k8s.io/v1"
GRANT_API = "gateway.networking.k8s.io/v1beta1"
ISTIO_API = "networking.istio.io/v1"
DEFAULT_CLASS = "istio"
_DURATION = re.compile(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")  # gateway-api GEP-2257
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class AppInput:
    """What the target needs of one app in one environment (plain values).

    Attributes:
        name, namespace: the App's.
        meta: ``{"labels": ..., "annotations": ...}`` every object carries.
        host: the Service's fully qualified host (``reviews.mesh.svc.cluster.local``).
        port: the service port, or ``None``.
        versions: ``{version: {"labels": ..., "trafficPolicy": ...}}``.
        traffic_policy: the app's ``trafficPolicy`` or ``None``.
        expose: the app's ``expose`` or ``None``.
        gateway_class: the environment's ``gatewayClassName``.
        selector: the app's Service selector (``spec.service.selector``; ``None``: ``{app: <service name>}``).
        protocol: ``spec.service.protocol``: ``http`` or ``grpc`` (a ``GRPCRoute`` instead of an ``HTTPRoute``).
        place: where errors about the app as a whole are placed.
        port_place: where an error about the port is placed.
    """

    name: str
    namespace: str
    meta: Mapping[str, Any]
    host: str
    port: int | None
    versions: Mapping[str, Mapping[str, Any]]
    traffic_policy: Mapping[str, Any] | None
    expose: Mapping[str, Any] | None
    gateway_class: str
    selector: Mapping[str, str] | None = None
    protocol: str = "http"
    place: Place | None = None
    port_place: Place | None = None


def _svc_parts(host: str, namespace: str) -> tuple[str, str]:
    parts = host.split(".")
    ns = parts[1] if len(parts) > 2 and parts[2] == "svc" else namespace
    return parts[0], ns


def version_service(app: str, version: str) -> str:
    """Name of the Service of one version: ``<app>-<version>``."""
    return f"{app}-{version}"


class GatewayApiTarget:
    """``spec.target: gateway-api``."""

    name = "gateway-api"
    route_kinds = ("HTTPRoute", "GRPCRoute")
    #: The client's proxy (or the gateway) names the cluster's Service, the version's own
    #: (see the module docstring); the server's sidecar would name whichever of the Services
    #: selecting its pod comes first, so the metrics read the client side.
    series_reporter = "source"

    def compile(self, routes: Sequence[SpecRoute], scope: str | None,
                body_places: Mapping[tuple[int, str], Place] | None = None) -> list[httproute.Rule]:
        """HTTPRoute rules (:func:`generator.routing.httproute_compiler.compile_rules`)."""
        return httproute.compile_rules(routes, scope=scope, body_places=body_places)

    # -- objects ------------------------------------------------------------------------------
    def objects(self, app: AppInput, routes: Sequence[SpecRoute],
                body_places: Mapping[tuple[int, str], Place] | None = None) -> list[tuple[str, str, dict[str, Any]]]:
        """The app's objects as ``[(kind, file name, object)]`` in file order.

        ``body_places``: where each route's fields are (``{(route index, key): place}``), for
        the refusal of a field HTTPRoute cannot carry.

        Raises:
            SpecErrors: a route HTTPRoute cannot carry (placed), no service port, a version
                Service name that is not a DNS label.
            SpecError: see above.
        """
        if not app.port:
            raise SpecError(f"app {as_yaml(app.name)}: the gateway-api target needs spec.service.port "
                            "(the per-version Services and backendRefs name it)", place=app.port_place,
                            hint="add spec.service.port (the port of the app's Service)")
        svc_name, svc_ns = _svc_parts(app.host, app.namespace)
        for version in app.versions:
            name = version_service(app.name, version)
            if len(name) > 63 or not _DNS_LABEL.match(name):
                raise SpecError(f"app {as_yaml(app.name)}: version Service {as_yaml(name)} is not a DNS-1035 "
                                "label of at most 63 characters", place=app.place,
                                hint="shorten the app or version name")
        out: list[tuple[str, str, dict[str, Any]]] = []
        expose = app.expose or {}
        paths = expose.get("paths") or []
        rules = self.compile(routes, None, body_places)
        stem = "grpcroute" if app.protocol == "grpc" else "httproute"
        # the mesh's route lives in the Service's namespace: a producer route, which GAMMA applies
        # to every client (a route in another namespace is a consumer route, for the clients of
        # that namespace only: gateway-api GEP-1426; istio/istio pilot/pkg/networking/core/route/
        # route.go buildSidecarVirtualHostsForVirtualService)
        mesh_parent = {"group": "", "kind": "Service", "name": svc_name, "port": app.port}
        gw = f"{app.name}-gateway"
        hosts = list(expose.get("hosts") or [])
        tls = expose.get("tls")
        gw_parents = ([{"name": gw, "sectionName": f"https-{i}"} for i in range(len(hosts))] if tls
                      else [{"name": gw}]) if expose else []
        if expose and (paths or svc_ns != app.namespace):
            gw_rules = rules
            if paths:
                scope = " or ".join(f'(uri exact {_q(p.rstrip("/") or "/")} or uri prefix {_q(p.rstrip("/") + "/")})'
                                    for p in paths)
                gw_rules = self.compile(routes, scope, body_places)
            for file, obj in ((f"{stem}.yaml", self._route(app, app.name, [mesh_parent], [], rules, svc_ns, routes,
                                                            svc_ns)),
                              (f"{stem}-gateway.yaml", self._route(app, f"{app.name}-gateway", gw_parents, hosts,
                                                                   gw_rules, svc_ns, routes, app.namespace))):
                out.append((obj["kind"], file, obj))
        else:
            obj = self._route(app, app.name, [mesh_parent, *gw_parents], hosts if expose else [], rules, svc_ns,
                              routes, svc_ns)
            out.append((obj["kind"], f"{stem}.yaml", obj))
        if expose:
            out.append(("Gateway", "gateway.yaml", self._gateway(app, gw, hosts, tls)))
            if tls:
                out.append(("HTTPRoute", "httproute-https-redirect.yaml", self._redirect(app, gw, hosts)))
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
        if expose and svc_ns != app.namespace:  # the Gateway's route refers to the Services
            out.append(("ReferenceGrant", "referencegrant.yaml", {
                "apiVersion": GRANT_API, "kind": "ReferenceGrant",
                "metadata": self._meta(app, f"{app.name}-from-{app.namespace}", svc_ns),
                # the grant names the route's own kind: Istio looks grants up by From{Kind,
                # Namespace} (istio/istio pilot/pkg/config/kube/gatewaycommon/references.go
                # BackendAllowed), so a GRPCRoute needs one from GRPCRoute
                "spec": {"from": [{"group": "gateway.networking.k8s.io",
                                   "kind": "GRPCRoute" if app.protocol == "grpc" else "HTTPRoute",
                                   "namespace": app.namespace}],
                         "to": [{"group": "", "kind": "Service"}]}}))
        return out

    @staticmethod
    def _meta(app: AppInput, name: str, namespace: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(app.meta["labels"])}
        if app.meta.get("annotations"):
            meta["annotations"] = dict(app.meta["annotations"])
        return meta

    def _route(self, app: AppInput, name: str, parents: list[dict[str, Any]], hostnames: list[str],
               rules: list[httproute.Rule], svc_ns: str, routes: Sequence[SpecRoute], namespace: str) -> dict[str, Any]:
        made = [self._rule(app, r, svc_ns, namespace) for r in rules]
        kind = "HTTPRoute"
        if app.protocol == "grpc":
            kind = "GRPCRoute"
            made = [_grpc_rule(rule, r, routes) for rule, r in zip(made, rules)]
        spec: dict[str, Any] = {"parentRefs": parents, "rules": made}
        if hostnames:
            spec["hostnames"] = hostnames
        return {"apiVersion": API, "kind": kind, "metadata": self._meta(app, name, namespace),
                "spec": spec}

    def _rule(self, app: AppInput, rule: httproute.Rule, svc_ns: str, namespace: str) -> dict[str, Any]:
        out: dict[str, Any] = {"name": rule.name, "matches": [m.to_object() for m in rule.matches]}
        refs = []
        for d in rule.body.get("route") or []:
            ref: dict[str, Any] = {"name": version_service(app.name, d["destination"]["subset"]),
                                   "port": app.port, "weight": int(d.get("weight", 100))}
            if svc_ns != namespace:
                ref["namespace"] = svc_ns
            refs.append(ref)
        out["backendRefs"] = refs
        if "timeout" in rule.body:
            out["timeouts"] = {"request": _duration(rule.body["timeout"])}
        filters = []
        headers = rule.body.get("headers") or {}
        for side, kind in (("request", "RequestHeaderModifier"), ("response", "ResponseHeaderModifier")):
            ops = headers.get(side) or {}
            if ops:
                mod: dict[str, Any] = {}
                for op in ("set", "add"):
                    if ops.get(op):
                        mod[op] = [{"name": k, "value": str(v)} for k, v in sorted(ops[op].items())]
                if ops.get("remove"):
                    mod["remove"] = list(ops["remove"])
                key = kind[0].lower() + kind[1:]
                filters.append({"type": kind, key: mod})
        if filters:
            out["filters"] = filters
        return out

    def _gateway(self, app: AppInput, name: str, hosts: list[str], tls: Mapping[str, Any] | None) -> dict[str, Any]:
        listeners = []
        for i, host in enumerate(hosts):
            listeners.append({"name": f"http-{i}", "hostname": host, "port": 80, "protocol": "HTTP"})
            if tls:
                listeners.append({"name": f"https-{i}", "hostname": host, "port": 443, "protocol": "HTTPS",
                                  "tls": {"mode": "Terminate", "certificateRefs": [
                                      {"kind": "Secret", "name": tls["credentialName"]}]}})
        return {"apiVersion": API, "kind": "Gateway", "metadata": self._meta(app, name, app.namespace),
                "spec": {"gatewayClassName": app.gateway_class, "listeners": listeners}}

    def _redirect(self, app: AppInput, gw: str, hosts: list[str]) -> dict[str, Any]:
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
        """The app's HTTPRoutes as the one VirtualService Istio converts them into.

        Istio turns each match of each rule into one route and sorts them by the Gateway API
        precedence (conversion.go ``sortHTTPRoutes``); a ``PathPrefix /p`` becomes the two
        blocks ``exact /p`` and ``prefix /p/`` (whole segments), ranked as the prefix. A
        route bound to the Service is bound to ``mesh``; one bound to the Gateway to
        ``<namespace>/<gateway>``; a ``backendRef`` ``<app>-<version>`` is the subset
        ``<version>`` of the app's host.
        """
        routes = [o for o in objects if o.get("kind") in ("HTTPRoute", "GRPCRoute")]
        main = next(o for o in routes if not o["metadata"]["name"].endswith("-https-redirect"))
        app = main["metadata"]["labels"].get("app.kubernetes.io/name", "")
        ns = main["metadata"]["namespace"]
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
        host, flat = "", []
        all_gateways: list[str] = []
        for route in routes:
            if route["metadata"]["name"].endswith("-https-redirect"):
                continue
            bound = []
            route_ns = route["metadata"]["namespace"]
            for parent in route["spec"].get("parentRefs") or []:
                if parent.get("kind") == "Service":
                    host = f"{parent['name']}.{parent.get('namespace', route_ns)}.svc.cluster.local"
                    bound.append("mesh")
                else:
                    bound.append(f"{parent.get('namespace', route_ns)}/{parent['name']}")
            bound = list(dict.fromkeys(bound))
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
                    entry["route"] = [{"destination": {"host": host, "subset": _version_of(app, ref["name"]),
                                                       **({"port": {"number": ref["port"]}} if ref.get("port") else {})},
                                       "weight": int(ref.get("weight", 1))} for ref in rule.get("backendRefs") or []]
                    if "timeouts" in rule:
                        entry["timeout"] = rule["timeouts"].get("request")
                    flat.append((m.rank(), len(flat), entry))
        flat.sort(key=lambda t: (tuple(-x for x in t[0]), t[1]))
        hosts = [host] + [h for r in routes if not r["metadata"]["name"].endswith("-https-redirect")
                          for h in r["spec"].get("hostnames") or []]
        vs = {"apiVersion": ISTIO_API, "kind": "VirtualService",
              "metadata": {"name": app, "namespace": ns, "labels": dict(main["metadata"]["labels"])},
              "spec": {"hosts": list(dict.fromkeys(hosts)), "http": [e for _, _, e in flat]}}
        if all_gateways != ["mesh"]:
            vs["spec"]["gateways"] = all_gateways
        else:  # the mesh alone: a VirtualService without gateways, as the Istio target writes it
            for entry in vs["spec"]["http"]:
                for block in entry["match"]:
                    del block["gateways"]
        return vs, gateways


def _grpc_rule(rule: dict[str, Any], compiled: httproute.Rule, routes: Sequence[SpecRoute]) -> dict[str, Any]:
    """An HTTPRoute rule as a ``GRPCRoute`` rule: a gRPC request is ``POST /<service>/<method>``,
    so an ``Exact`` path ``/S/M`` is the method match ``{service: S, method: M}`` and a
    ``PathPrefix /S`` the service match ``{service: S}`` (Istio converts them back into exactly
    those paths and ranks them alike, conversion.go ``createGRPCURIMatch``).

    Raises:
        SpecError: a match or field a GRPCRoute cannot carry (placed at the route's ``when``).
    """
    route = routes[compiled.spec_index]

    def refuse(what: str, hint: str) -> SpecError:
        return SpecError(f"route {as_yaml(route.name)}: {what} cannot be written in a GRPCRoute "
                         "(target gateway-api, service.protocol grpc)", place=route.place, hint=hint)

    out: dict[str, Any] = {k: v for k, v in rule.items() if k not in ("matches", "timeouts")}
    if "timeouts" in rule:
        raise refuse("a timeout", "GRPCRoute has no timeouts; drop timeout here or keep spec.target: istio")
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
