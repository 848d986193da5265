"""The Istio target: ``VirtualService``, ``DestinationRule`` and ``Gateway`` (networking.istio.io/v1).

The objects themselves are filled from the Jinja2 templates of :mod:`generator.render.render`
(a repository may override them); this module is the target's side of the interface
(:class:`generator.targets.Target`): route compilation (:func:`generator.routing.compiler.compile_http`),
weights of a VirtualService's ``http`` routes (by DestinationRule subset), and telemetry names.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from generator.routing import compiler
from generator.routing.compiler import SpecRoute


class IstioTarget:
    """``spec.target: istio``."""

    name = "istio"
    route_kinds = ("VirtualService",)
    #: The server's sidecar names the Service the client asked for (the VirtualService's
    #: host) and the pod's version: one series per version under the app's Service.
    series_reporter = "destination"

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
