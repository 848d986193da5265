"""Routes of the spec -> Istio HTTPRoute list (interim: catch-all routes only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from generator.errors import Place, SpecError, SpecErrors


@dataclass(frozen=True)
class SpecRoute:
    name: str
    when: str | None
    body: dict[str, Any]
    place: Place | None = None


def compile_http(routes: Sequence[SpecRoute], *, scope: str | None = None) -> list[dict[str, Any]]:
    errors = [SpecError("conditions are not supported yet", place=r.place) for r in routes if r.when]
    SpecErrors.collect(errors)
    return [{"name": r.name, **r.body} for r in routes]
