"""Where a request goes: the rendered VirtualService of an app, evaluated as Istio would.

``meshgen explain`` reads what is committed under ``rendered/`` -- the YAML Argo CD or Flux
applies -- not the spec, so it answers for what the cluster runs. The matching itself is
:mod:`generator.routing.simulate`; this module finds the file, reads it, and names the spec route
behind the Istio route (:func:`generator.routing.compiler.spec_route_name`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from generator.errors import OutsideError, SpecError, SpecErrors
from generator.routing import compiler as routing
from generator.routing import simulate
from generator.spec import config, paths


@dataclass(frozen=True)
class Explanation:
    """Where one request goes.

    Attributes:
        path: repository-relative path of the rendered VirtualService read.
        request: the request evaluated.
        istio_index: index of the Istio HTTP route taken in ``spec.http``, or ``None``.
        istio_route: its ``name``, or ``None`` when no route matches (Envoy answers 404).
        spec_route: the spec route whose destination that Istio route carries, or ``None``.
        destinations: ``{version: weight in percent}`` of that route (empty when none matches).
    """

    path: str
    request: simulate.Request
    istio_index: int | None
    istio_route: str | None
    spec_route: str | None
    destinations: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        """DESIGN §4: ``{"route": NAME or None, "destinations": {VERSION: WEIGHT}}``."""
        return {"route": self.spec_route, "destinations": self.destinations}


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
    found = sorted(env_dir.glob(f"*/{app}/virtualservice.yaml"))
    if not found:
        raise SpecError(f"app {app!r} has no rendered VirtualService in environment {env!r}",
                        hint=f"run `meshgen render --env {env}` if the app is new")
    return found[0]


def explain(root: Path, app: str, env: str, request: simulate.Request) -> Explanation:
    """Which route of ``app``'s rendered VirtualService in ``env`` ``request`` takes.

    Raises:
        SpecError: no such rendered app or environment (exit 1).
        OutsideError: the rendered file cannot be read or is not a VirtualService.
    """
    path = virtual_service_path(root, app, env)
    rel = path.relative_to(root).as_posix()
    try:
        obj = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
        http = obj["spec"].get("http") or []
        hit = simulate.match_http(http, request)
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError,
            simulate.UnmodelledMatch) as e:
        raise OutsideError(f"{rel}: cannot evaluate this VirtualService: {e}") from e
    if hit is None:
        return Explanation(rel, request, None, None, None, {})
    index, route = hit
    name = route.get("name", f"#{index}")
    return Explanation(rel, request, index, name, routing.spec_route_name(name),
                       simulate.destinations(route))


def default_port(root: Path, app: str, env: str) -> int:
    """The port of the app's service as the rendered routes name it (80 when they do not)."""
    try:
        obj = yaml.load(virtual_service_path(root, app, env).read_text(), Loader=yaml.CSafeLoader)
        for route in obj["spec"].get("http") or []:
            for dest in route.get("route") or []:
                number = ((dest.get("destination") or {}).get("port") or {}).get("number")
                if number:
                    return int(number)
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError, SpecError, SpecErrors):
        pass
    return 80
