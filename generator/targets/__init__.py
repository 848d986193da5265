"""Output targets: what a rendered environment is written as, behind one small interface.

An environment picks its target with ``spec.target`` in ``environments/<env>.yaml``:

``istio`` (the default)
    Istio ``Gateway``, ``VirtualService`` and ``DestinationRule`` (:mod:`.istio`).
``gateway-api``
    Kubernetes Gateway API ``Gateway``, ``HTTPRoute`` (parents: the Gateway and, for the mesh,
    the app's Service -- GAMMA), one ``Service`` per version as the route's ``backendRefs``,
    Istio ``DestinationRule`` per version Service for the app's ``trafficPolicy``, a
    ``ReferenceGrant`` where a route crosses namespaces, a ``GRPCRoute`` instead of the
    ``HTTPRoute`` for a gRPC service (:mod:`.gatewayapi`).

One module per target, as Flagger's ``pkg/router`` has one file per mesh. The interface
(:class:`Target`) is what the renderer, ``meshgen explain`` and the rollout metrics use; the
bot, ``meshgen diff`` and the report read objects and rollout status only and never ask which
target an environment has. Everything here is pure: plain values in, plain values out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from generator.errors import Place
from generator.routing.compiler import SpecRoute

DEFAULT = "istio"
"""The target of an environment whose spec names none."""


@dataclass(frozen=True)
class AppInput:
    """What a target needs of one app in one environment: plain values, nothing read.

    Attributes:
        name, namespace, env: the App's name and namespace, the environment's name.
        meta: ``{"labels": ..., "annotations": ...}`` every object carries.
        spec: the effective App spec (environment overrides merged, read only).
        env_spec: the environment's ``spec`` (``ingress``, ``gatewayClassName``...).
        host: the app's fully qualified host (``reviews.mesh.svc.cluster.local``; a
            ``serviceEntry`` app's host as written).
        routes: the spec's HTTP routes, the rollout status applied, bodies in Istio's terms
            (``route``: ``[{"destination": {"host", "subset"?, "port"?}, "weight"?}]``, ``mirror``
            a Destination, ``mirrorPercentage``, ``rewrite``, ``headers``...).
        l4: ``{"tcp": [...], "tls": [...]}``: each spec route as ``{"name", "match"?, "route"}``
            (``route`` as above).
        ports: ``{fully qualified host: service port}`` of the environment's apps (a
            destination to another app's host without a ``port`` takes that app's).
        place: where a value of the spec is (``EffectiveApp.place``: ``place("metadata", "name")``).
        key_place: where a key of the spec is (``EffectiveApp.key_place``).
        memo: what a target keeps for the other apps of one render (the renderer passes one
            dict to every app of a render; a target's own keys in it); by default a dict of
            this app's own.
    """

    name: str
    namespace: str
    env: str
    meta: Mapping[str, Any]
    spec: Mapping[str, Any]
    env_spec: Mapping[str, Any]
    host: str
    routes: Sequence[SpecRoute] = ()
    l4: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    ports: Mapping[str, int | None] = field(default_factory=dict)
    place: Callable[..., Place | None] = lambda *keys: None
    key_place: Callable[..., Place | None] = lambda *keys: None
    memo: dict[Any, Any] = field(default_factory=dict)

    @property
    def port(self) -> int | None:
        """``spec.service.port``."""
        return (self.spec.get("service") or {}).get("port")


@dataclass(frozen=True)
class Made:
    """One object a target makes of an app, for the renderer to write.

    Exactly one of ``obj`` and ``context`` is set: ``obj`` is the object itself; ``context``
    the values of the renderer's Jinja2 template for ``kind`` (a repository may override it),
    the common ``name``/``namespace``/``labels``/``annotations`` added by the renderer.

    Attributes:
        kind: the object's kind.
        file: its file name in the app's directory (``httproute.yaml``).
        place: the spec value it mainly comes from (analysis messages are placed there).
        obj: the object, or ``None``.
        context: the template's values, or ``None``.
        problem_place: where a problem of ``obj`` against its CRD (``--strict``) is placed;
            ``None``: at ``place``.
    """

    kind: str
    file: str
    place: Place | None
    obj: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    problem_place: Place | None = None


class Target(Protocol):
    """What one output target does.

    Attributes:
        name: the value of ``spec.target`` (``istio``, ``gateway-api``).
        route_kinds: the kinds whose objects carry the app's routes (read by ``explain``).
        series_reporter: the ``reporter`` of the Istio series the rollout metrics read.
    """

    name: str
    route_kinds: tuple[str, ...]
    series_reporter: str

    def refusals(self, spec: Mapping[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
        """``(key path, words)`` of each field of an App spec this target cannot render at
        all (the renderer refuses the app, placed at each key)."""
        ...

    def objects(self, app: AppInput) -> list[Made]:
        """The app's objects in file order (raises ``SpecErrors``/``SpecError``, placed)."""
        ...

    def compile(self, routes: Sequence[SpecRoute], scope: str | None) -> list[Any]:
        """The spec's routes as this target's route list (raises ``SpecErrors``, placed)."""
        ...

    def weights(self, obj: Mapping[str, Any]) -> dict[str, dict[str, int]]:
        """``{route name: {version: weight}}`` of a rendered route object (read weights)."""
        ...

    def set_weights(self, obj: dict[str, Any], route: str, split: Mapping[str, int]) -> None:
        """Write ``{version: weight}`` into the routes of ``obj`` carrying spec route ``route``."""
        ...

    def series_service(self, service: str, app: str, version: str) -> str:
        """``destination_service_name`` of the traffic this target sends to ``version``."""
        ...

    def as_virtual_service(self, objects: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The rendered route objects of one app as the VirtualService and Gateways
        (``{"ns/name": Istio Gateway}``) Istio makes of them, for ``meshgen explain``."""
        ...


def names() -> list[str]:
    """The targets an environment can pick."""
    return ["istio", "gateway-api"]


def get(name: str | None) -> Target:
    """The target named ``name`` (``None``: :data:`DEFAULT`).

    Raises:
        KeyError: no such target (the environment schema refuses it first).
    """
    from generator.targets import gatewayapi, istio

    return {"istio": istio.TARGET, "gateway-api": gatewayapi.TARGET}[name or DEFAULT]


def of_environment(env_spec: Mapping[str, Any] | None) -> Target:
    """The target of an environment's ``spec``."""
    return get((env_spec or {}).get("target"))


def of_objects(objects: Iterable[Mapping[str, Any]]) -> Target | None:
    """The target that wrote ``objects`` (Kubernetes objects of one app): the first whose
    ``route_kinds`` holds one of their kinds; ``None`` when none does."""
    kinds = {o.get("kind") for o in objects}
    return next((t for t in (get(n) for n in names()) if kinds & set(t.route_kinds)), None)
