"""The Istio target: ``VirtualService``, ``DestinationRule``, ``Gateway`` and ``ServiceEntry`` (networking.istio.io/v1).

The objects themselves are filled from the Jinja2 templates of :mod:`generator.render.render`
(a repository may override them): :meth:`IstioTarget.objects` gives each template its values
(:class:`generator.targets.Made` with a ``context``). The rest is the target's side of the
interface (:class:`generator.targets.Target`): route compilation
(:func:`generator.routing.compiler.compile_http`), weights of a VirtualService's ``http`` routes
(by DestinationRule subset), and telemetry names.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from generator.errors import SpecError, as_yaml
from generator.routing import compiler
from generator.routing.compiler import SpecRoute
from generator.targets import AppInput, Made


def gateway_name(spec: Mapping[str, Any], app: str) -> str:
    """Name of an exposed app's Gateway (in the app's namespace): ``expose.name``, by default ``<app>-gateway``."""
    return (spec.get("expose") or {}).get("name") or f"{app}-gateway"


def vs_gateways(spec: Mapping[str, Any], app: str, namespace: str) -> list[str]:
    """The gateways of an app's VirtualService: ``spec.gateways`` (default ``[mesh]`` when the app is
    exposed, none otherwise: Istio's default is the mesh) plus the app's own Gateway when exposed."""
    if spec.get("delegate"):
        return []
    own = f"{namespace}/{gateway_name(spec, app)}" if spec.get("expose") else None
    if "gateways" not in spec:
        return ["mesh", own] if own else []
    listed = list(spec["gateways"])
    refs = {g if "/" in g or g == "mesh" else f"{namespace}/{g}" for g in listed}
    return listed + ([own] if own and own not in refs else [])


def vs_hosts(spec: Mapping[str, Any], app: str, namespace: str, fqdn: str) -> list[str]:
    """The hosts of an app's VirtualService: ``spec.hosts`` when given, else the service host
    (``fqdn``) and the exposed hosts (a server's ``namespace/`` prefix dropped); none for a delegate."""
    if spec.get("delegate"):
        return []
    if "hosts" in spec:
        return list(spec["hosts"])
    gateways = vs_gateways(spec, app, namespace)
    own: str | None = fqdn
    if gateways and "mesh" not in gateways:  # bound to gateways only: no mesh-internal host
        own = None
    expose = spec.get("expose") or {}
    exposed = list(expose.get("hosts") or [])
    if not exposed:
        for server in expose.get("servers") or []:
            exposed += [h.split("/", 1)[-1] for h in server.get("hosts") or []]
    if not exposed:
        return [fqdn]
    return ([own] if own else []) + [h for h in dict.fromkeys(exposed) if h != own]


def service_entry(app: AppInput) -> Made:
    """The app's ``serviceEntry`` as the ServiceEntry template's values: Istio's fields as
    written, ``hosts`` defaulting to ``[service.host]`` and ``exportTo`` to ``spec.exportTo``."""
    spec = app.spec
    entry = dict(spec["serviceEntry"])
    entry.setdefault("hosts", [spec["service"]["host"]])
    if spec.get("exportTo") and "exportTo" not in entry:
        entry["exportTo"] = spec["exportTo"]
    return Made("ServiceEntry", "serviceentry.yaml", app.key_place("spec", "serviceEntry"), context={"entry": entry})


def _cond_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class IstioTarget:
    """``spec.target: istio``."""

    name = "istio"
    route_kinds = ("VirtualService",)
    #: The server's sidecar names the Service the client asked for (the VirtualService's
    #: host) and the pod's version: one series per version under the app's Service.
    series_reporter = "destination"

    def refusals(self, spec: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
        """None: the spec is Istio's model."""
        return []

    def objects(self, app: AppInput) -> list[Made]:
        """ServiceEntry (``spec.serviceEntry``), DestinationRule (versions as subsets, the
        ``trafficPolicy``), VirtualService (the compiled ``http`` routes; ``tcp`` and ``tls`` as
        written) and, when exposed, the Gateway -- each as its template's values.

        Raises:
            SpecErrors: a route that does not compile (placed).
            SpecError: an exposed app without an ingress selector.
        """
        spec = app.spec
        expose = spec.get("expose")
        scope = None
        if expose and expose.get("paths"):
            gateway_ref = f"{app.namespace}/{gateway_name(spec, app.name)}"
            paths = " or ".join(f"uri prefix {_cond_str(p)}" for p in expose["paths"])
            scope = f'gateway "mesh" or (gateway {_cond_str(gateway_ref)} and ({paths}))'
        http = self.compile(app.routes, scope) if app.routes else []
        l4 = {key: [{k: v for k, v in r.items() if k != "name"} for r in app.l4.get(key) or []]
              for key in ("tcp", "tls")}
        export_to = spec.get("exportTo")
        meta_place = app.place("metadata", "name")
        versions = spec.get("versions") or {}
        out: list[Made] = []
        if "serviceEntry" in spec:
            out.append(service_entry(app))
        if versions or spec.get("trafficPolicy"):
            subsets = [{"name": version, "labels": v.get("labels"), "trafficPolicy": v.get("trafficPolicy")}
                       for version, v in sorted(versions.items())]  # subsets by version name
            out.append(Made("DestinationRule", "destinationrule.yaml", meta_place, context={
                "host": app.host, "traffic_policy": spec.get("trafficPolicy"), "subsets": subsets,
                "export_to": export_to}))
        if app.routes or l4["tcp"] or l4["tls"]:
            out.append(Made("VirtualService", "virtualservice.yaml", meta_place, context={
                "hosts": vs_hosts(spec, app.name, app.namespace, app.host),
                "gateways": vs_gateways(spec, app.name, app.namespace), "http": http,
                "tcp": l4["tcp"], "tls": l4["tls"], "export_to": export_to}))
        if expose:
            ingress = expose.get("selector") or (app.env_spec.get("ingress") or {}).get("selector")
            if not ingress:
                raise SpecError(
                    f"app {as_yaml(app.name)} is exposed but environment {as_yaml(app.env)} has no spec.ingress.selector",
                    place=app.key_place("spec", "expose"),
                    hint=f"add spec.ingress.selector (e.g. {{istio: ingressgateway}}) to environments/{app.env}.yaml, "
                         "or expose.selector to the app")
            servers = None
            if expose.get("servers"):
                servers = [{**server, "hosts": server.get("hosts") or list(expose["hosts"])}
                           for server in expose["servers"]]
            out.append(Made("Gateway", "gateway.yaml", app.key_place("spec", "expose"), context={
                "gateway_name": gateway_name(spec, app.name), "selector": ingress,
                "expose_hosts": expose.get("hosts"), "tls": expose.get("tls"), "servers": servers,
                "https_redirect": expose.get("httpsRedirect", True)}))
        return out

    def compile(self, routes: Sequence[SpecRoute], scope: str | None) -> list[dict[str, Any]]:
        """``VirtualService.spec.http`` (:func:`generator.routing.compiler.compile_http`)."""
        return compiler.compile_http(routes, scope=scope)

    def weights(self, obj: Mapping[str, Any]) -> dict[str, dict[str, int]]:
        """``{http route name: {subset: weight}}``; a route without ``route`` is left out."""
        out: dict[str, dict[str, int]] = {}
        for route in (obj.get("spec") or {}).get("http") or []:
            if route.get("route"):
                out[route.get("name", "")] = {
                    (d.get("destination") or {}).get("subset", ""): int(d.get("weight", 100 if len(route["route"]) == 1 else 0))
                    for d in route["route"]}
        return out

    def set_weights(self, obj: dict[str, Any], route: str, split: Mapping[str, int]) -> None:
        for entry in (obj.get("spec") or {}).get("http") or []:
            if compiler.spec_route_name(entry.get("name", "")) == route and entry.get("route"):
                template = dict(entry["route"][0]["destination"])
                entry["route"] = [{"destination": {**template, "subset": v}, "weight": w}
                                  for v, w in sorted(split.items()) if w]

    def series_service(self, service: str, app: str, version: str) -> str:
        """The app's Service: a VirtualService sends every version to its host (by subset), so
        Istio labels the traffic ``destination_service_name`` = that Service (istio.io
        docs/reference/config/metrics)."""
        return service

    def as_virtual_service(self, objects: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        vs = next(o for o in objects if o.get("kind") == "VirtualService")
        gateways = {}
        for o in objects:
            if o.get("kind") == "Gateway":
                meta = o.get("metadata") or {}
                gateways[f"{meta.get('namespace')}/{meta.get('name')}"] = dict(o)
        return dict(vs), gateways


TARGET = IstioTarget()
