"""``meshgen explain --objects``: where a request goes among any Gateway API or Istio objects.

:func:`load` reads YAML files and directories (every ``*.yaml``/``*.yml`` under them, sorted);
:func:`explain` answers from the Gateway API model (:mod:`generator.routing.httproute`) for
HTTPRoutes and from Istio's first-match model (:mod:`generator.routing.simulate`) for
VirtualServices. Istio's objects are answered only when no HTTPRoute attaches to the parent asked
about (istiod does not merge the two for one host).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from generator.errors import Place, SpecError, SpecErrors, UsageError
from generator.render import analysis, output
from generator.render import explain as explain_mod
from generator.routing import cors, httproute, simulate
from generator.routing.request import Request, split_target
from generator.spec import loader


@dataclass
class Loaded:
    """One object of the files given to ``--objects``, with the places of its fields (the
    fields of :class:`generator.render.analysis.RenderedObjectLike`, and ``document``)."""

    obj: dict[str, Any]
    document: loader.Document
    env: str = ""
    app: str = ""

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def namespace(self) -> str:
        return httproute.meta(self.obj)[0]

    @property
    def path(self) -> str:
        return self.document.path

    @property
    def place(self) -> Place:
        return self.document.place()


def read(paths: list[str]) -> list[Loaded]:
    """Every object of the YAML files (and directories) ``paths``, in file order, with places.

    Raises:
        UsageError: a path does not exist (exit 2).
        SpecErrors: a file is not YAML, as ``path:line:col`` (exit 1).
    """
    out: list[Loaded] = []
    errors: list[SpecError] = []
    for path in output.yaml_files([Path(p) for p in paths],
                                  hint="give YAML files or directories of Kubernetes objects to --objects"):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            errors.append(SpecError(f"cannot read: {getattr(e, 'strerror', None) or e}", place=Place(str(path))))
            continue
        try:
            out += [Loaded(d.data, d) for d in loader.load_documents(text, str(path)) if isinstance(d.data, dict)]
        except SpecError as e:
            errors.append(e)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            place = Place(str(path), mark.line + 1, mark.column + 1) if mark else Place(str(path))
            errors.append(SpecError(f"not YAML: {getattr(e, 'problem', None) or e}", place=place,
                                    hint="fix the YAML; each document must be a Kubernetes object"))
    SpecErrors.collect(errors)
    return out


def load(paths: list[str]) -> httproute.Objects:
    """Every object of the YAML files (and directories) ``paths``, indexed (:func:`read`).

    Raises:
        UsageError: a path does not exist (exit 2).
        SpecErrors: a file is not YAML, as ``path:line:col`` (exit 1).
    """
    return httproute.Objects.of([o.obj for o in read(paths)])


def analyze(objects: list[Loaded]) -> list[analysis.Finding]:
    """The cross-object analysis of the Gateway API objects among ``objects`` (MG201-MG205 of
    :mod:`generator.render.analysis`), each finding placed at its field ``path:line:col``."""
    return sorted(analysis.analyze_gateway_api(objects), key=lambda f: (f.sort_key(), f.code))


def parent(value: str, option: str) -> tuple[str, str]:
    """``NAMESPACE/NAME`` as a pair.

    Raises:
        UsageError: not of that form.
    """
    ns, sep, name = value.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise UsageError(f"{option} {value!r} is not NAMESPACE/NAME (e.g. {option} default/web)")
    return ns, name


@dataclass(frozen=True)
class Asked:
    """The request options of ``explain --objects``."""

    uri: str = "/"
    method: str = "GET"
    headers: dict[str, str] | None = None
    query: dict[str, str] | None = None
    authority: str | None = None
    scheme: str = "http"
    port: int | None = None
    source_namespace: str | None = None


def _istio(objects: httproute.Objects, request: Request, gateway: tuple[str, str] | None,
           service: tuple[str, str] | None) -> dict[str, Any] | None:
    """The answer of the first VirtualService bound to the parent and serving the authority, or ``None``."""
    host = request.authority.rpartition(":")[0] if ":" in request.authority else request.authority
    for vs in objects.virtual_services:
        ns, name = httproute.meta(vs)
        spec = vs.get("spec") or {}
        gateways = [g if "/" in g or g == "mesh" else f"{ns}/{g}" for g in spec.get("gateways") or ["mesh"]]
        if gateway is not None and f"{gateway[0]}/{gateway[1]}" not in gateways:
            continue
        if service is not None and "mesh" not in gateways:
            continue
        names = {host} if gateway is not None else {service[1], f"{service[1]}.{service[0]}",  # type: ignore[index]
                                                    f"{service[1]}.{service[0]}.svc",
                                                    f"{service[1]}.{service[0]}.svc.cluster.local"}
        hosts = spec.get("hosts") or []
        if not any(h == "*" or any(httproute.host_matches(h, n) for n in names) for h in hosts):
            continue
        outcome = simulate.evaluate(spec.get("http") or [], request)
        if outcome.kind != simulate.ROUTE:
            return {"route": f"{ns}/{name}", "rule": None, "backends": {}, "status": 404, "outcome": outcome.kind}
        route = outcome.route or {}
        backends: dict[str, int] = {}
        entries = route.get("route") or []
        for entry in entries:
            dest = entry.get("destination") or {}
            dhost = str(dest.get("host", ""))
            parts = dhost.split(".")
            key = f"{parts[1] if len(parts) > 1 else ns}/{parts[0]}" + (f":{dest['subset']}" if dest.get("subset") else "")
            weight = int(entry.get("weight", 100 if len(entries) == 1 else 0))
            if weight:
                backends[key] = backends.get(key, 0) + weight
        details = explain_mod.route_details(route)
        status = None
        if "corsPolicy" in route and "route" in route:  # Envoy's CORS filter (only on a route that forwards)
            answered = cors.answer(route["corsPolicy"], request)
            if answered is not None:
                details["cors"] = answered.as_json()
                if answered.answered:
                    status, backends = 200, {}
        if "redirect" in details:
            status = int(details["redirect"].get("redirectCode") or 301)
            details["location"] = explain_mod.redirect_location(route["redirect"], request, "")
        elif "directResponse" in details:
            status = int(details["directResponse"]["status"])
        return {"route": f"{ns}/{name}", "rule": outcome.index, "ruleName": route.get("name"),
                "backends": backends, "status": status, "outcome": simulate.ROUTE, **details}
    return None


def explain(objects: httproute.Objects, asked: Asked, *, gateway: tuple[str, str] | None = None,
            service: tuple[str, str] | None = None) -> dict[str, Any]:
    """Where the request goes, as JSON: ``{"route": "ns/name", "rule": index, "backends":
    {"namespace/name": weight}, "status": 404|500|redirect code|None, "outcome", ...filters}``.

    The authority defaults to the Service's name (``--service``) or to ``example.com``
    (``--gateway``); the caller's namespace to the Service's.

    Raises:
        UsageError: the Gateway or Service is not among the objects.
    """
    path, query = split_target(asked.uri)
    query.update({k: v for k, v in (asked.query or {}).items() if k not in query})
    authority = asked.authority or (service[1] if service else "example.com")
    source_ns = asked.source_namespace or (service[0] if service else (gateway[0] if gateway else "default"))
    request = Request(headers=dict(asked.headers or {}), query=query, uri=path, method=asked.method,
                      authority=authority, scheme=asked.scheme, port=asked.port or 80,
                      source_namespace=source_ns,
                      gateway="mesh" if service else f"{gateway[0]}/{gateway[1]}")  # type: ignore[index]
    has_routes = (service is not None and httproute.service_routes(objects, service, None, source_ns)) or (
        gateway is not None and gateway in objects.gateways)
    if not has_routes:
        answer = _istio(objects, request, gateway, service)
        if answer is not None:
            return answer
    try:
        return httproute.explain(objects, request, gateway=gateway, service=service, port=asked.port).as_json()
    except httproute.ModelError as e:
        raise UsageError(f"{e}; give the file that defines it to --objects") from e
