"""What a change does to the rendered output, for the person reviewing it.

A pull request that edits ``apps/reviews.yaml`` shows the spec diff; what a reviewer needs to
know is what the mesh will do differently. ``meshgen diff`` renders the base ref and the
working tree with the same meshgen and compares the two outputs: first a summary in words,
per environment and app ("reviews/prod: route `default` v1 100 → v1 90 / v2 10",
"retries 3 → 5", "outlier detection removed"), then the unified YAML diff.

The comparison (:func:`summarize`, :func:`unified_diff`, :func:`format_text`,
:func:`format_markdown`) is pure: it takes two ``{path: bytes}`` maps of rendered files. Only
:func:`diff_repo` touches git: it checks the base ref out into a temporary ``git worktree``
(removed afterwards) and renders both trees with :func:`generator.render.render.render_repo`.

Across a change of an environment's output target (``spec.target``) the summary compares
what the routes mean, request by request, not how each target writes them (see
:func:`_target_change`).

Field meanings follow Istio's reference (networking.istio.io/v1 VirtualService ``http`` routes,
``HTTPMatchRequest``, ``HTTPRetry``, ``HTTPFaultInjection``; DestinationRule ``trafficPolicy``
and ``subsets``; Gateway ``servers``).
"""

from __future__ import annotations

import difflib
import json
import re
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Mapping

import git
import yaml

from generator import errors
from generator import targets
from generator.render import checks, render
from generator.routing import simulate
from generator.routing.conditions import compiled
from generator.routing.compiler import NO_ROUTE, spec_route_name

KINDS = ("VirtualService", "DestinationRule", "Gateway", "ServiceEntry")
"""Istio kinds whose changes are described in words; other files only count as changed."""

POLICY_NAMES = {
    "tls": "TLS",
    "connectionPool": "connection pool",
    "outlierDetection": "outlier detection",
    "loadBalancer": "load balancer",
    "portLevelSettings": "port-level settings",
    "tunnel": "tunnel",
    "proxyProtocol": "proxy protocol",
}
"""DestinationRule ``trafficPolicy`` fields, as a reviewer says them."""

GITOPS_TITLES = {"argocd": "Argo CD manifests", "flux": "Flux manifests"}
"""Summary titles of the controller manifests under ``rendered/_gitops/<tool>/``."""

MARKDOWN_MARKER = "<!-- meshgen-diff -->"
"""First line of the markdown output, so CI can find and update its own pull-request comment."""

MARKDOWN_LIMIT = 60_000
"""Characters of YAML diff kept in markdown (GitHub refuses comments over 65,536 characters)."""

Conditions = Mapping[tuple[str, str], Mapping[str, "str | None"]]
"""``{(env, app): {spec route name: its `when` as written, None for a route without one}}``:
the spec's words for the routes, so the summary quotes conditions instead of compiled matches."""


# --------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class AppChange:
    """What changed for one app in one environment.

    Attributes:
        env: environment name.
        app: app name (for files outside ``<env>/<namespace>/<app>/``, a label such as
            ``_gitops`` or ``kustomization``).
        namespace: the app's namespace, empty when not applicable.
        objects: ``(kind, "added" | "removed" | "changed")`` pairs, in kind order.
        traffic: sentences describing the changes, in the order a reviewer reads them.
    """

    env: str
    app: str
    namespace: str
    objects: tuple[tuple[str, str], ...]
    traffic: tuple[str, ...]

    @property
    def title(self) -> str:
        """``app/env``, as the summary heads each entry."""
        return f"{self.app}/{self.env}"

    def objects_text(self) -> str:
        """``VirtualService changed, Gateway added``."""
        return ", ".join(f"{kind} {what}" for kind, what in self.objects)


@dataclass
class Diff:
    """The comparison of two renderings.

    Attributes:
        base_label: how the base is named in headings (``main@1a2b3c4``).
        head_label: how the compared tree is named (``working tree``).
        changes: the summary, one entry per changed (env, app), sorted by env then app.
        yaml_diff: the unified diff of the rendered files (``a/`` and ``b/`` prefixed paths).
        notes: remarks on how the comparison was made (e.g. the base did not render).
    """

    base_label: str
    head_label: str
    changes: list[AppChange]
    yaml_diff: str
    notes: list[str] = field(default_factory=list)

    @property
    def changed_files(self) -> int:
        """How many files the YAML diff shows."""
        return sum(1 for line in self.yaml_diff.splitlines() if line.startswith("+++ "))


def compare(base_files: Mapping[str, bytes], head_files: Mapping[str, bytes], *,
            base_label: str = "base", head_label: str = "head",
            base_when: Conditions | None = None, head_when: Conditions | None = None,
            base_objects: Mapping[str, Any] | None = None, head_objects: Mapping[str, Any] | None = None) -> Diff:
    """Compare two renderings given as ``{repo-relative path: file bytes}``.

    ``base_when`` and ``head_when`` (see :data:`Conditions`) let the summary name routes by
    their spec conditions; without them it describes Istio's compiled matches.
    ``base_objects`` and ``head_objects``: ``{path: object}`` of the files a render made
    (:func:`objects_of`), which are what parsing those files gives; read, never changed. A
    changed file without one is parsed.

    Raises:
        errors.CheckFailed: a rendered file is not valid YAML.
    """
    changed = [p for p in set(base_files) | set(head_files) if base_files.get(p) != head_files.get(p)]
    base_objects, head_objects = base_objects or {}, head_objects or {}
    base = {p: base_objects[p] if p in base_objects else _load(p, base_files[p])  # equal bytes need no parse
            for p in changed if p in base_files}
    head = {p: head_objects[p] if p in head_objects else _load(p, head_files[p]) for p in changed if p in head_files}
    return Diff(base_label, head_label, summarize(base, head, base_when, head_when),
                unified_diff(base_files, head_files))


def objects_of(rendering: render.Rendering) -> dict[str, Any]:
    """``{path: object}`` of a rendering's object files (what :func:`compare` need not parse)."""
    return {o.path: o.obj for o in rendering.objects}


def _load(path: str, data: bytes) -> Any:
    if not path.endswith((".yaml", ".yml")):
        return data
    try:
        return yaml.load(data, Loader=yaml.CSafeLoader)
    except yaml.YAMLError as e:
        raise errors.CheckFailed(f"{path}: rendered file is not YAML: {e}") from e


def _owner(path: str) -> tuple[str, str, str]:
    """``(env, app, namespace)`` of a rendered path ``rendered/<env>/<ns>/<app>/<file>``."""
    parts = PurePosixPath(path).parts
    if parts and parts[0] == "rendered":
        parts = parts[1:]
    if parts and parts[0] == "_gitops":
        return "_gitops", parts[1] if len(parts) > 2 else "gitops", ""
    if len(parts) >= 4:
        return parts[0], parts[2], parts[1]
    if len(parts) >= 2:
        return parts[0], "kustomization", ""
    return "", path, ""


def summarize(base: Mapping[str, Any], head: Mapping[str, Any],
              base_when: Conditions | None = None, head_when: Conditions | None = None) -> list[AppChange]:
    """Describe the change from ``base`` to ``head``, two ``{path: parsed object}`` maps
    (``base_when``/``head_when``: the spec conditions of each side's routes, see :func:`compare`).

    Files are grouped by the (env, namespace, app) their path names; an app whose objects are
    all equal is left out. Environment kustomizations are left out of the summary too: they
    only list the objects, whose changes are already named.

    Returns:
        One :class:`AppChange` per changed app, sorted by environment, then app.
    """
    groups: dict[tuple[str, str, str], list[str]] = {}
    for path in sorted(set(base) | set(head)):
        if base.get(path) == head.get(path):
            continue
        groups.setdefault(_owner(path), []).append(path)
    out = []
    for (env, app, ns), paths in sorted(groups.items()):
        if app == "kustomization":
            continue
        objects: list[tuple[str, str]] = []
        traffic: list[str] = []
        switched = _target_change(paths, base, head, (base_when or {}).get((env, app)),
                                  (head_when or {}).get((env, app)))
        order = {k: i for i, k in enumerate(KINDS)}
        kinds = {p: _kind(head.get(p) if head.get(p) is not None else base.get(p), p) for p in paths}
        for path in sorted(paths, key=lambda p: (order.get(kinds[p], len(KINDS)), kinds[p], p)):
            old, new = base.get(path), head.get(path)
            what = "added" if old is None else "removed" if new is None else "changed"
            label = kinds[path]
            if env == "_gitops":
                label = _gitops_label(label, new if new is not None else old, path)
            objects.append((label, what))
            if switched is None:
                traffic.extend(describe(kinds[path], old, new, (base_when or {}).get((env, app)),
                                        (head_when or {}).get((env, app))))
        if switched is not None:
            objects, traffic = list(switched[0]), list(switched[1])
        out.append(AppChange(env, app, ns, tuple(objects), tuple(traffic)))
    return out


def _target_change(paths: list[str], base: Mapping[str, Any], head: Mapping[str, Any],
                   when_old: Mapping[str, str | None] | None,
                   when_new: Mapping[str, str | None] | None
                   ) -> tuple[tuple[tuple[str, str], ...], list[str]] | None:
    """``(objects, sentences)`` for an app whose environment changed its output target
    (``spec.target``), ``None`` when the target did not change.

    ``objects`` names each kind once (``3 Services added``, ``DestinationRule changed``). The
    sentences compare what the routing *means*: both sides are read through their target's
    :meth:`generator.targets.Target.as_virtual_service` (Istio's conversion of HTTPRoutes,
    sorted by the Gateway API precedence) and asked where each request of
    :func:`_probe_requests` goes (:func:`generator.routing.simulate.evaluate`). Rules are
    named by the spec route they carry (guards, intersections and per-match rules are one
    route), destinations by version, weights in percent of the route, and a destination port
    equal to the Service's port is the port Istio picks itself. When every request takes the
    same spec route to the same versions with the same weights and policies, one sentence says
    so; otherwise the sentences name the weights or policies that changed, and the requests
    that now take another route (or none), one example each.
    """
    old = [base[p] for p in paths if isinstance(base.get(p), dict) and base[p].get("kind")]
    new = [head[p] for p in paths if isinstance(head.get(p), dict) and head[p].get("kind")]
    before, after = targets.of_objects(old), targets.of_objects(new)
    if before is None or after is None or before.name == after.name:
        return None
    objects = _kinds_change(old, new)
    written = f"now written as {_route_kinds_text(new, after.route_kinds)} ({before.name} -> {after.name})"
    try:
        vs_old, gws_old = before.as_virtual_service(old)
        vs_new, gws_new = after.as_virtual_service(new)
    except (KeyError, TypeError, IndexError, StopIteration, AttributeError, ValueError):
        return objects, [written + "; the routes could not be compared: read the YAML diff"]
    names = _unique([*(when_old or {}), *(when_new or {})]) or None
    ports = _service_ports(old + new)
    try:
        lines = _meaning_change(vs_old.get("spec") or {}, vs_new.get("spec") or {}, names, ports)
    except simulate.UnmodelledMatch:
        lines = _virtual_service(vs_old.get("spec") or {}, vs_new.get("spec") or {}, when_old, when_new)
    lines += _gateways_change(gws_old, gws_new)
    lines += _policy_of_versions(old, new)
    if not lines:
        written += "; routing unchanged: same routes, same weights"
    return objects, [written, *lines, *_gateway_deployments(gws_old, gws_new), *_support_objects(old, new)]


_API_NAMES = {"gateway.networking.k8s.io": "Gateway API", "networking.istio.io": "Istio"}
"""How the summary names an object's API group."""


def _group(obj: Mapping[str, Any]) -> str:
    api = str(obj.get("apiVersion") or "")
    return api.split("/")[0] if "/" in api else "core"


def _plural(kind: str, n: int) -> str:
    return kind if n == 1 else f"{n} {kind}s"


def _kinds_change(old: list[Any], new: list[Any]) -> tuple[tuple[str, str], ...]:
    """Each kind once, in kind order: ``(3 Services, added)``, ``(VirtualService, removed)``,
    ``(DestinationRule, changed)`` (on both sides, in whatever number)."""
    count_old: dict[str, int] = {}
    count_new: dict[str, int] = {}
    for objs, counts in ((old, count_old), (new, count_new)):
        for o in objs:
            counts[o["kind"]] = counts.get(o["kind"], 0) + 1
    order = {k: i for i, k in enumerate(KINDS)}
    out = []
    for kind in sorted(set(count_old) | set(count_new), key=lambda k: (order.get(k, len(KINDS)), k)):
        a, b = count_old.get(kind, 0), count_new.get(kind, 0)
        out.append((_plural(kind, b), "added") if not a else (_plural(kind, a), "removed") if not b
                   else (kind if a == b == 1 else f"{kind}s", "changed"))
    return tuple(out)


def _route_kinds_text(objects: list[Any], route_kinds: Iterable[str]) -> str:
    """``Gateway API HTTPRoute``, ``Istio VirtualService``: the kinds that carry the routes now."""
    by_group: dict[str, list[str]] = {}
    for kind in route_kinds:
        for o in objects:
            if o.get("kind") == kind:
                group = _API_NAMES.get(_group(o), _group(o))
                if kind not in by_group.setdefault(group, []):
                    by_group[group].append(kind)
    return ", ".join(f"{g} {' and '.join(ks)}" for g, ks in by_group.items()) or "other objects"


def _support_objects(old: list[Any], new: list[Any]) -> list[str]:
    """The objects a target adds around its routes (the per-version Services an HTTPRoute
    sends to, ReferenceGrants), each kind named once with its objects."""
    lines = []
    for kind, why in (("Service", "one per version: the routes' backends, as Gateway API routes have no subsets"),
                      ("ReferenceGrant", "opening a namespace to the routes")):
        names_old = sorted(_name(o) for o in old if o.get("kind") == kind)
        names_new = sorted(_name(o) for o in new if o.get("kind") == kind)
        added = [n for n in names_new if n not in names_old]
        removed = [n for n in names_old if n not in names_new]
        if added:
            lines.append(f"{_plural(kind, len(added))} added: {', '.join(added)}"
                         + (f" ({why})" if kind != "Service" or all(_selects_version(o) for o in new
                                                                     if o.get("kind") == kind) else ""))
        if removed:
            lines.append(f"{_plural(kind, len(removed))} removed: {', '.join(removed)}")
    return lines


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("name", "?"))


def _selects_version(service: Mapping[str, Any]) -> bool:
    return len(((service.get("spec") or {}).get("selector") or {})) > 1


def _service_ports(objects: list[Any]) -> set[int]:
    """The app's Service ports: those of its per-version Services and of the Service the mesh
    route is bound to (``parentRefs[].port``)."""
    ports: set[int] = set()
    for o in objects:
        spec = o.get("spec") or {}
        if o.get("kind") == "Service":
            ports.update(int(p["port"]) for p in spec.get("ports") or [] if p.get("port"))
        for parent in spec.get("parentRefs") or [] if isinstance(spec, dict) else []:
            if parent.get("kind") == "Service" and parent.get("port"):
                ports.add(int(parent["port"]))
    return ports


def _gateways_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Gateways by ``namespace/name`` (as Istio Gateways, see ``as_virtual_service``): added,
    removed, or their hosts and ports changed."""
    lines = [f"new Gateway {n} for {', '.join(_gateway_hosts(g.get('spec') or {}))}"
             for n, g in new.items() if n not in old]
    lines += [f"Gateway {n} removed: no more ingress for {', '.join(_gateway_hosts(g.get('spec') or {}))}"
              for n, g in old.items() if n not in new]
    for name in (n for n in new if n in old):
        a, b = old[name].get("spec") or {}, new[name].get("spec") or {}
        if sorted(_gateway_hosts(a)) != sorted(_gateway_hosts(b)):
            lines += [f"Gateway {name}: {s}" for s in _set_change("host", _gateway_hosts(a), _gateway_hosts(b))]
        ports_a = sorted({(s.get("port") or {}).get("number") for s in a.get("servers") or []})
        ports_b = sorted({(s.get("port") or {}).get("number") for s in b.get("servers") or []})
        lines += [f"Gateway {name}: {s}" for s in _set_change("port", ports_a, ports_b)]
    return lines


def _gateway_deployments(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Which pods serve a Gateway kept across the target change: an Istio Gateway is served by
    the gateway pods its ``selector`` picks; for a Gateway API Gateway of class ``istio``,
    Istio deploys a gateway (Deployment and Service) of its own (istio.io
    tasks/traffic-management/ingress/gateway-api, "Automated Deployment") -- so its
    address changes, though its routes do not."""
    lines = []
    for name in (n for n in new if n in old):
        a, b = old[name].get("spec") or {}, new[name].get("spec") or {}
        if a.get("selector") and not b.get("selector"):
            lines.append(f"Gateway {name}: served by the gateway Istio deploys for it (a new address) "
                         f"instead of the pods with {_labels({'labels': a['selector']})}")
        elif b.get("selector") and not a.get("selector"):
            lines.append(f"Gateway {name}: served by the pods with {_labels({'labels': b['selector']})} "
                         f"instead of the gateway Istio deployed for it (a new address)")
    return lines


def _policy_of_versions(old: list[Any], new: list[Any]) -> list[str]:
    """The ``trafficPolicy`` each version's traffic gets: the DestinationRule of the app's host
    (and its subsets'), or one DestinationRule per version Service; each change once."""
    def per_version(objects: list[Any]) -> dict[str, Any]:
        rules = [o.get("spec") or {} for o in objects if o.get("kind") == "DestinationRule"]
        out: dict[str, Any] = {}
        for spec in rules:  # Istio merges a subset's policy over its host's, field by field
            for subset in spec.get("subsets") or []:
                out[str(subset.get("name"))] = {**(spec.get("trafficPolicy") or {}),
                                                **(subset.get("trafficPolicy") or {})}
        for o in objects:
            spec = o.get("spec") or {}
            if o.get("kind") == "DestinationRule" and not spec.get("subsets"):
                app = ((o.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/name", "")
                version = str(spec.get("host", "")).split(".")[0].removeprefix(f"{app}-")
                out[version] = spec.get("trafficPolicy") or {}
        return out
    a, b = per_version(old), per_version(new)
    pairs = {v: (a.get(v) or {}, b.get(v) or {}) for v in sorted({*a, *b})}
    if len(_unique(json.dumps(pair, sort_keys=True, default=str) for pair in pairs.values())) == 1:  # alike for all
        return _policy_change("", *next(iter(pairs.values())))
    lines = []
    for version, (policy_a, policy_b) in pairs.items():
        lines += _policy_change(f"{version}: ", policy_a, policy_b)
    return lines


# ------------------------------------------------------------------ routing meaning


_NO_ROUTE = "no route (404)"
_DEFAULT_ROUTE = "the Service's own routing (every version, no weights)"


def _meaning_change(old: dict, new: dict, names: list[str] | None, ports: set[int]) -> list[str]:
    """What the routes of two VirtualService ``spec``s do differently, request by request.

    Raises:
        simulate.UnmodelledMatch: a match the request model does not evaluate.
    """
    implicit_old = _portless_hosts(old)
    implicit_new = _portless_hosts(new)
    http_old = _normal_http(old, names, ports, implicit_new)
    http_new = _normal_http(new, names, ports, implicit_old)
    hosts_old = sorted(h for h in old.get("hosts") or [] if h)
    hosts_new = sorted(h for h in new.get("hosts") or [] if h)
    lines = _set_change("host", hosts_old, hosts_new)
    changed: dict[str, tuple[dict, dict]] = {}
    moved: dict[tuple[str, str], simulate.Request] = {}
    for request in _probe_requests(http_old + http_new):
        a, b = _answer(http_old, request), _answer(http_new, request)
        if a[:2] == b[:2]:
            continue
        if a[0] == b[0] and a[0] not in (_NO_ROUTE, _DEFAULT_ROUTE):
            changed.setdefault(a[0], (a[2], b[2]))
        else:  # the simplest request shows it best
            key = (_answer_text(a), _answer_text(b))
            if key not in moved or _plainness(request) < _plainness(moved[key]):
                moved[key] = request
    for name, (route_old, route_new) in changed.items():
        said = _route_change(route_old, route_new) or [f"{_inline(route_old)} → {_inline(route_new)}"]
        lines += [f"route `{name}`: {s}" for s in said]
    lines += _moved_text(moved)
    for key in ("tcp", "tls"):
        l_old = _normal_l4(old.get(key) or [], ports, implicit_new)
        l_new = _normal_l4(new.get(key) or [], ports, implicit_old)
        if l_old != l_new:
            lines += _virtual_service({key: l_old}, {key: l_new})
    return lines


def _normal_l4(routes: list[dict], ports: set[int], portless: set[str]) -> list[dict]:
    """TCP or TLS routes, normalised as :func:`_normal_route`; sorted by port when each
    matches on ports alone, no two on the same (a connection then meets one of them only, so
    their order means nothing)."""
    out = [_normal_route(r, "", ports, portless) for r in routes]
    by_port = [[b.get("port") for b in r.get("match") or []] for r in out]
    seen = [p for each in by_port for p in each]
    if all(each and None not in each for each in by_port) and len(set(seen)) == len(seen) and \
            all(set(b) == {"port"} for r in out for b in r["match"]):
        out.sort(key=lambda r: min(b["port"] for b in r["match"]))
    return out


def _moved_text(moved: Mapping[tuple[str, str], simulate.Request]) -> list[str]:
    """One sentence per (route before, route now), with its plainest request; requests that
    differ in headers or query only and now take the same route (or none) are said once for
    all the routes they took (``requests to /shopx through gateway ...``)."""
    groups: dict[tuple[str, str, str, str], list[tuple[str, simulate.Request]]] = {}
    for (was, now), request in moved.items():
        groups.setdefault((now, request.method, request.uri, request.gateway), []).append((was, request))
    lines = []
    for (now, method, uri, gateway), items in groups.items():
        if len(items) == 1:
            (was, request), = items
            lines.append(f"requests like {_request_text(request)} now take {now}, not {was}")
        else:
            where = " from the mesh" if gateway == "mesh" else f" through gateway {gateway}"
            lines.append(f"requests like `{method} {uri}`{where} now take {now}, not (by their headers "
                         f"and query) {', '.join(was for was, _ in items)}")
    return lines


def _plainness(request: simulate.Request) -> tuple[int, int, int, str]:
    return (len(request.headers) + len(request.query), request.method != "GET", len(request.uri), request.uri)


def _answer(http: list[dict], request: simulate.Request) -> tuple[str, str, dict]:
    """``(spec route or status, the route's action as canonical JSON, the route)`` for one request."""
    outcome = simulate.evaluate(http, request)
    if outcome.kind == simulate.ROUTE and outcome.route is not None and outcome.route.get("name"):
        action = {k: v for k, v in outcome.route.items() if k not in ("name", "match")}
        return str(outcome.route["name"]), json.dumps(action, sort_keys=True, default=str), action
    if outcome.kind == simulate.OMITTED and request.gateway == "mesh":
        return _DEFAULT_ROUTE, "", {}
    return _NO_ROUTE, "", {}


def _answer_text(answer: tuple[str, str, dict]) -> str:
    if answer[0] in (_NO_ROUTE, _DEFAULT_ROUTE):
        return answer[0]
    return f"route `{answer[0]}` ({action_text(answer[2])})"


def _request_text(request: simulate.Request) -> str:
    """```GET /reviewsx` with header end-user=jason through gateway mesh/reviews-gateway``."""
    parts = [f"`{request.method} {request.uri}"
             + ("?" + "&".join(f"{k}={v}" for k, v in sorted(request.query.items())) if request.query else "")
             + "`"]
    parts += [f"header {k}={v}" for k, v in sorted(request.headers.items())]
    text = parts[0] + (f" with {', '.join(parts[1:])}" if parts[1:] else "")
    return text + (" from the mesh" if request.gateway == "mesh" else f" through gateway {request.gateway}")


def _portless_hosts(spec: dict) -> set[str]:
    """Hosts some destination of ``spec`` names without a port (Istio picks the Service's)."""
    out = set()
    for key in ("http", "tcp", "tls"):
        for route in spec.get(key) or []:
            for d in route.get("route") or []:
                dest = d.get("destination") or {}
                if not dest.get("port"):
                    out.add(dest.get("host", ""))
    return out


def _normal_http(spec: dict, names: list[str] | None, ports: set[int], portless: set[str]) -> list[dict]:
    """``spec.http`` with each route named by its spec route (``beta-guard-1-default`` ->
    ``default``; an explicit ``no-route`` unnamed), every match block bound to its gateways
    (the VirtualService's when it names none, ``mesh`` without), destinations by version
    (a subset without host is the app's), weights in percent of the route, and ports left out
    where the Service's port is meant."""
    hosts = [h for h in spec.get("hosts") or [] if h]
    own = next((h for h in hosts if h.endswith(".svc.cluster.local")), hosts[0] if hosts else "")
    bound = spec.get("gateways") or ["mesh"]
    out = []
    for route in spec.get("http") or []:
        entry = _normal_route(route, own, ports, portless)
        istio = route.get("name") or ""
        name = spec_route_name(istio, names) if names is not None else spec_route_name(istio)
        if name is None and istio and istio != NO_ROUTE and names is not None:
            name = spec_route_name(istio)
        if name:
            entry["name"] = name
        else:
            entry.pop("name", None)
        if route.get("match"):
            entry["match"] = [{**b, "gateways": b.get("gateways") or bound} for b in route["match"]]
        out.append(entry)
    return out


def _duration(text: Any) -> Any:
    """A duration in seconds, written ``1.5s``: Istio's (protobuf ``Duration``, ``1.5s``) and
    Gateway API's (GEP-2257, ``1500ms``, ``1h30m``) alike, read by the spec checks' Go duration
    parser (:func:`generator.render.checks.parse_duration`); any other value as it is."""
    ns = checks.parse_duration(text.strip()) if isinstance(text, str) else None
    if ns is None:
        return text
    return f"{(Decimal(ns) / 1_000_000_000).normalize():f}s"


def _normal_route(route: dict, own: str, ports: set[int], portless: set[str]) -> dict:
    entry = {k: v for k, v in route.items() if k not in ("route", "mirror")}
    if "timeout" in entry:
        entry["timeout"] = _duration(entry["timeout"])
    if isinstance(entry.get("retries"), dict) and "perTryTimeout" in entry["retries"]:
        entry["retries"] = {**entry["retries"], "perTryTimeout": _duration(entry["retries"]["perTryTimeout"])}
    dests = route.get("route") or []
    total = sum(int(d.get("weight", 100 if len(dests) == 1 else 0)) for d in dests)
    if dests:
        normal = []
        for d in dests:
            weight = int(d.get("weight", 100 if len(dests) == 1 else 0))
            percent = weight * 100 / total if total else 0
            if percent:
                normal.append({"destination": _normal_destination(d.get("destination") or {}, own, ports, portless),
                               "weight": int(percent) if percent == int(percent) else round(percent, 2)})
        entry["route"] = normal
    if route.get("mirror"):
        entry["mirror"] = _normal_destination(route["mirror"], own, ports, portless)
    return entry


def _normal_destination(dest: Mapping[str, Any], own: str, ports: set[int], portless: set[str]) -> dict:
    out = dict(dest)
    if not out.get("host"):
        out["host"] = own
    port = (out.get("port") or {}).get("number")
    if port is not None and ((out["host"] == own and port in ports) or out["host"] in portless):
        del out["port"]
    return out


# ------------------------------------------------------------------ requests that tell routes apart


def _probe_requests(http: list[dict], limit: int = 60) -> list[simulate.Request]:
    """Requests that tell the routes of ``http`` apart: for each match block one that it
    accepts and, for each of its conditions, one that fails just that condition (another value,
    the header absent, the prefix not ending a segment, another gateway); and a request
    accepted by two blocks at once wherever two blocks can both accept one (where precedence
    and guards decide), as long as there are at most ``limit`` distinct blocks."""
    gateways = _unique(g for r in http for b in r.get("match") or [] for g in b.get("gateways") or ["mesh"])
    gateways = gateways or ["mesh"]
    witnesses: list[dict] = []
    for route in http:
        for block in route.get("match") or []:
            for w in _witness(block):
                if w is not None and w not in witnesses:
                    witnesses.append(w)
    seen: set[tuple] = set()
    out: list[simulate.Request] = []

    def add(w: dict) -> None:
        request = _request_of(w)
        key = (request.method, request.uri, tuple(sorted(request.headers.items())),
               tuple(sorted(request.query.items())), request.gateway, request.port)
        if key not in seen:
            seen.add(key)
            out.append(request)

    for g in gateways:
        add({"gateway": g})
    for w in witnesses:
        add(w)
        for variant in _variants(w, gateways):
            add(variant)
    if len(witnesses) <= limit:
        for i, a in enumerate(witnesses):
            for b in witnesses[i + 1:]:
                both = _merge(a, b)
                if both is not None:
                    add(both)
    return out


def _value_of(sm: Any) -> str | None:
    """A value the string match accepts; ``None`` when none is found (a regex
    :func:`_regex_sample` cannot satisfy)."""
    if not isinstance(sm, dict) or not sm or sm.get("regex") == "*":
        return "1"
    if "exact" in sm:
        return str(sm["exact"])
    if "prefix" in sm:
        return str(sm["prefix"])
    if "regex" in sm:
        return _regex_sample(str(sm["regex"]))
    return None


_REGEX_STEPS = (
    (re.compile(r"\\d"), "0"), (re.compile(r"\\w"), "a"), (re.compile(r"\\s"), " "),
    (re.compile(r"\[\^[^\]]*\]"), "~"),                      # a negated class: a character it rarely names
    (re.compile(r"\[\\?(.)[^\]]*\]"), r"\1"),                # a class: its first character
    (re.compile(r"\((?:\?:)?([^()|]*)(?:\|[^()]*)?\)"), r"\1"),  # a group: its first alternative
    (re.compile(r"(?<!\\)\.[*+?]"), "x"), (re.compile(r"(?<!\\)\."), "x"),
    (re.compile(r"(?<!\\)[*+?]"), ""),
    (re.compile(r"(\\?.)\{([0-9]+)(,[0-9]*)?\}"), lambda m: m.group(1) * int(m.group(2))),  # x{n,m}: n times
)


def _regex_sample(pattern: str) -> str | None:
    """A string the RE2 ``pattern`` fully matches (as Envoy's ``safe_regex`` does), made by
    reading its simple parts literally (a class as its first character, a group as its first
    alternative, ``.*`` as ``x``); ``None`` when the result does not match."""
    text = pattern.removeprefix("^")
    text = text[:-1] if text.endswith("$") and not text.endswith("\\$") else text
    for _ in range(8):  # groups inside groups
        for step, replacement in _REGEX_STEPS:
            text = step.sub(replacement, text)
    text = re.sub(r"\\(.)", r"\1", text)  # escaped characters as themselves
    try:
        return text if compiled(pattern).fullmatch(text) is not None else None
    except Exception:  # a pattern RE2 refuses matches nothing
        return None


def _witness(block: dict) -> list[dict | None]:
    """One witness per gateway of the block: ``{"gateway", "uri": (how, value), "method",
    "headers": {name: value | None (absent)}, "query": {...}, "port"}``."""
    w: dict[str, Any] = {"headers": {}, "query": {}}
    uri = block.get("uri")
    if isinstance(uri, dict) and uri and uri.get("regex") != "*":
        how = "exact" if "exact" in uri else "prefix" if "prefix" in uri else None
        value = str(uri[how]) if how else _value_of(uri)
        if value is None:
            return [None]
        w["uri"] = (how or "exact", value)
    if block.get("method"):
        value = _value_of(block["method"])
        if value is None:
            return [None]
        w["method"] = value
    for key, field_ in (("headers", "headers"), ("queryParams", "query")):
        for name, sm in (block.get(key) or {}).items():
            value = _value_of(sm)
            if value is None:
                return [None]
            w[field_][name.lower() if field_ == "headers" else name] = value
    for name, sm in (block.get("withoutHeaders") or {}).items():
        w["headers"].setdefault(name.lower(), None)
    if block.get("port"):
        w["port"] = int(block["port"])
    return [{**w, "gateway": g} for g in block.get("gateways") or ["mesh"]]


def _variants(w: dict, gateways: list[str]) -> list[dict]:
    out = [{**w, "gateway": g} for g in gateways if g != w.get("gateway")]
    if "uri" in w:
        how, value = w["uri"]
        out += [{**w, "uri": ("exact", v)} for v in (value + "x", value.rstrip("/") + "/x", value.rstrip("/") or "/")]
        out.append({k: v for k, v in w.items() if k != "uri"})
    if "method" in w:
        out.append({**w, "method": "PUT" if w["method"] != "PUT" else "PATCH"})
    for field_ in ("headers", "query"):
        for name, value in w[field_].items():
            others = {k: v for k, v in w[field_].items() if k != name}
            out.append({**w, field_: others})
            out.append({**w, field_: {**others, name: (value or "") + "x"}})
    return out


def _merge(a: dict, b: dict) -> dict | None:
    """A witness both ``a`` and ``b`` describe, or ``None`` when they contradict."""
    if a.get("gateway") != b.get("gateway") or a.get("port", b.get("port")) != b.get("port", a.get("port")):
        return None
    if a.get("method", b.get("method")) != b.get("method", a.get("method")):
        return None
    out = {**a, **b}
    if "uri" in a and "uri" in b:
        (how_a, va), (how_b, vb) = a["uri"], b["uri"]
        if how_a == how_b == "exact":
            if va != vb:
                return None
        elif how_a == "exact" or how_b == "exact":
            exact, prefix = (va, vb) if how_a == "exact" else (vb, va)
            if not exact.startswith(prefix):
                return None
            out["uri"] = ("exact", exact)
        else:
            longer, shorter = (va, vb) if len(va) >= len(vb) else (vb, va)
            if not longer.startswith(shorter):
                return None
            out["uri"] = ("prefix", longer)
    for field_ in ("headers", "query"):
        for name in set(a[field_]) & set(b[field_]):
            if a[field_][name] != b[field_][name]:
                return None
        out[field_] = {**a[field_], **b[field_]}
    return out


def _request_of(w: dict) -> simulate.Request:
    uri = w["uri"][1] if "uri" in w else "/"
    return simulate.Request(headers={k: v for k, v in w.get("headers", {}).items() if v is not None},
                            query={k: v for k, v in w.get("query", {}).items() if v is not None},
                            uri=uri or "/", method=w.get("method", "GET"), port=w.get("port", 80),
                            gateway=w.get("gateway", "mesh"))


def _gitops_label(kind: str, obj: Any, path: str) -> str:
    """``Application mesh-config-prod``, ``GitRepository mesh-config (prod)``: a controller
    object by name, and by environment when its name is shared (Flux's per-cluster directories)."""
    name = (obj.get("metadata") or {}).get("name") if isinstance(obj, dict) else None
    if not name:
        return kind
    parts = PurePosixPath(path).parts
    tool_at = parts.index("_gitops") + 1 if "_gitops" in parts else len(parts)
    if parts[tool_at:tool_at + 1] == ("flux",) and len(parts) > tool_at + 2 and parts[tool_at + 1] not in name:
        return f"{kind} {name} ({parts[tool_at + 1]})"
    return f"{kind} {name}"


def _kind(obj: Any, path: str) -> str:
    if isinstance(obj, dict) and obj.get("kind"):
        return str(obj["kind"])
    return PurePosixPath(path).name


def describe(kind: str, old: Any, new: Any, when_old: Mapping[str, str | None] | None = None,
             when_new: Mapping[str, str | None] | None = None) -> list[str]:
    """Sentences for one object's change (``old``/``new`` are ``None`` when absent).

    ``when_old``/``when_new``: ``{spec route name: when text}`` of the app on each side; with
    them a VirtualService's routes are named and conditioned in the spec's words."""
    if kind not in KINDS or not isinstance(old or new, dict):
        return []
    if old is None:
        return _describe_new(kind, new, when_new)
    if new is None:
        return [f"{kind} removed: no more {_kind_effect(kind)}"]
    spec_old, spec_new = old.get("spec") or {}, new.get("spec") or {}
    if kind == "VirtualService":
        return _virtual_service(spec_old, spec_new, when_old, when_new)
    if kind == "DestinationRule":
        return _destination_rule(spec_old, spec_new)
    if kind == "ServiceEntry":
        return _service_entry(spec_old, spec_new)
    return _gateway(spec_old, spec_new)


def _kind_effect(kind: str) -> str:
    return {"VirtualService": "routing rules for its hosts",
            "DestinationRule": "subsets or traffic policy for its host",
            "Gateway": "ingress for its hosts",
            "ServiceEntry": "registry entry for its hosts"}[kind]


def _describe_new(kind: str, obj: dict, when: Mapping[str, str | None] | None = None) -> list[str]:
    spec = obj.get("spec") or {}
    if kind == "VirtualService":
        lines = [f"new VirtualService for {', '.join(_unique(spec.get('hosts') or []))}"]
        for key, route in _routes(spec, when).items():
            extras = [s for s in _route_change({}, route) if not s.startswith(("→", "new match", "condition"))]
            lines.append(f"route {_route_name(key)} {_route_text(route)}"
                         + "".join(f"; {e}" for e in extras))
        for key in ("tcp", "tls"):
            lines += [f"{key} route {i + 1} {_route_text(r)}" for i, r in enumerate(spec.get(key) or [])]
        return lines
    if kind == "ServiceEntry":
        return [f"new ServiceEntry for {', '.join(spec.get('hosts') or [])}: {spec.get('location', 'MESH_EXTERNAL')}, "
                f"resolution {spec.get('resolution', 'NONE')}, ports {_ports_text(spec)}"]
    if kind == "DestinationRule":
        subsets = ", ".join(s.get("name", "?") for s in spec.get("subsets") or [])
        lines = [f"subsets {subsets}" if subsets else "no subsets"]
        for name, value in (spec.get("trafficPolicy") or {}).items():
            lines.append(f"{POLICY_NAMES.get(name, name)}: {_brief(value)}")
        return lines
    return [f"ingress for {', '.join(_gateway_hosts(spec))}"]


# ------------------------------------------------------------------ VirtualService


_WHEN = "_when"
"""Key under which :func:`_routes` keeps a route's spec condition (absent when unknown)."""


def _routes(spec: dict, when: Mapping[str, str | None] | None = None) -> dict[tuple[str, int], dict]:
    """``{(spec route name, 0): http route}``: one entry per spec route, in the spec's order.

    The Istio routes meshgen compiles for one spec route -- the route itself, split into parts,
    and the copies of it inside other routes' guards (``beta-guard-1-default``, see
    :mod:`generator.routing.compiler`) -- are one route here, described by its own Istio route
    (the matches of all its parts). With ``when`` (``{spec route name: when text}``) the entry
    carries the condition as written under :data:`_WHEN`. A route that is not meshgen's
    (unnamed, or a name the spec does not have) stays on its own, unnamed ones by position.
    """
    names = list(when) if when is not None else None
    own: dict[str, dict] = {}
    carried: dict[str, dict] = {}
    for i, route in enumerate(spec.get("http") or []):
        istio = route.get("name") or f"#{i + 1}"
        name = (spec_route_name(istio, names) if names is not None else spec_route_name(istio)) or istio
        if not route.get("name") or name == istio:
            if name in own:
                own[name] = {**own[name], "match": [*(own[name].get("match") or []), *(route.get("match") or [])]}
            else:
                own[name] = dict(route)
        else:
            carried.setdefault(name, dict(route, match=[]))
    out: dict[tuple[str, int], dict] = {}
    for name, route in [*own.items(), *((n, r) for n, r in carried.items() if n not in own)]:
        if when is not None and name in when:
            route = {**route, _WHEN: when[name]}
        out[(name, 0)] = route
    return out


def spec_routes(spec: dict, when: Mapping[str, str | None] | None = None) -> list[tuple[str, str | None, dict]]:
    """A rendered VirtualService ``spec``'s HTTP routes, one per spec route as :func:`describe`
    reads them (guard routes folded into the route they carry): ``(name, when, route)``, in
    first-match order; ``when`` is the spec's condition as written (``None`` without one, or
    when ``when`` does not know the route), ``route`` the Istio route that stands for it."""
    out = []
    for (name, _), route in _routes(spec, when).items():
        condition = route.get(_WHEN)
        out.append((name, condition, {k: v for k, v in route.items() if k != _WHEN}))
    return out


def _route_name(key: tuple[str, int]) -> str:
    name, n = key
    return f"`{name}`" if n == 0 else f"`{name}` ({n + 1}. part)"


def split(route: dict) -> dict[str, int]:
    """``{subset (or host): weight percent}`` of an HTTP route's destinations.

    A single destination without ``weight`` gets 100, as Istio does.
    """
    dests = route.get("route") or []
    out: dict[str, int] = {}
    for d in dests:
        dest = d.get("destination") or {}
        name = dest.get("subset") or dest.get("host", "?")
        weight = d.get("weight", 100 if len(dests) == 1 else 0)
        out[name] = out.get(name, 0) + int(weight)
    return out


def _dest_texts(route: dict) -> list[str]:
    """``host:port/subset`` of each destination of a route."""
    out = []
    for d in route.get("route") or []:
        dest = d.get("destination") or {}
        port = (dest.get("port") or {}).get("number")
        out.append(f"{dest.get('host', '?')}{f':{port}' if port else ''}"
                   f"{'/' + dest['subset'] if dest.get('subset') else ''}")
    return out


def split_text(weights: Mapping[str, int]) -> str:
    """``v1 90 / v2 10`` (zero weights left out, as Istio ignores them)."""
    shown = [f"{k} {v}" for k, v in weights.items() if v]
    return " / ".join(shown) or "nothing"


def action_text(route: dict) -> str:
    """What an HTTP route does with a request it matches, in words: its split (``v1 90 / v2
    10``), ``redirect 301 to https://example.com/new`` or ``direct response 503 "down"``.

    Istio's ``HTTPRedirect`` keeps what it does not set (scheme, host, port, path) from the
    request and answers 301 without ``redirectCode``; ``HTTPDirectResponse`` answers
    ``status`` with an optional body (istio/api ``networking/v1/virtual_service.proto``).
    """
    if "redirect" in route and not route.get("route"):
        return redirect_text(route.get("redirect") or {})
    if "directResponse" in route and not route.get("route"):
        return direct_response_text(route.get("directResponse") or {})
    return split_text(split(route))


def redirect_text(redirect: Mapping[str, Any]) -> str:
    """``redirect 301 to https://example.com/new``; ``redirect 302 to path /new`` when the
    target keeps the request's scheme and host."""
    code = redirect.get("redirectCode", 301)
    scheme, host, port, path = (redirect.get(k) for k in ("scheme", "authority", "port", "uri"))
    derive = {"FROM_REQUEST_PORT": "the request's port", "FROM_PROTOCOL_DEFAULT": "the scheme's default port"}
    if scheme and host:
        target = f"{scheme}://{host}{f':{port}' if port else ''}{path or ''}"
        extras = [] if path else ["same path"]
    else:
        target = ", ".join(part for part in (
            f"scheme {scheme}" if scheme else "", f"host {host}" if host else "", f"port {port}" if port else "",
            f"path {path}" if path else "") if part)
        extras = []
    if redirect.get("derivePort") in derive:
        extras.append(f"port: {derive[redirect['derivePort']]}")
    text = f"redirect {code}" + (f" to {target}" if target else "")
    return text + (f" ({', '.join(extras)})" if extras else "")


def direct_response_text(direct: Mapping[str, Any]) -> str:
    """``direct response 503 "maintenance"``: the status and body Envoy answers with itself."""
    body = direct.get("body") or {}
    text = body.get("string")
    shown = ""
    if isinstance(text, str) and text:
        one_line = " ".join(text.split())
        shown = f' "{one_line[:40]}{"…" if len(one_line) > 40 else ""}"'
    elif body.get("bytes"):
        shown = " (a binary body)"
    return f"direct response {direct.get('status', '?')}{shown}"


def match_texts(route: dict) -> list[str]:
    """One sentence per ``match`` entry (entries are or-ed; predicates inside are and-ed)."""
    return [_match_text(m) for m in route.get("match") or []]


def _match_text(match: dict) -> str:
    preds = []
    for key in ("uri", "method", "authority", "scheme"):
        if key in match:
            preds.append(f"{key} {_string_match(match[key])}")
    for name, m in sorted((match.get("headers") or {}).items()):
        preds.append(f"header {name} {_string_match(m)}")
    for name, m in sorted((match.get("withoutHeaders") or {}).items()):
        preds.append(f"without header {name} {_string_match(m)}")
    for name, m in sorted((match.get("queryParams") or {}).items()):
        preds.append(f"query {name} {_string_match(m)}")
    if "port" in match:
        preds.append(f"port {match['port']}")
    for k, v in sorted((match.get("sourceLabels") or {}).items()):
        preds.append(f"source label {k}={v}")
    if "sourceNamespace" in match:
        preds.append(f"source namespace {match['sourceNamespace']}")

    known = {"uri", "method", "authority", "scheme", "headers", "withoutHeaders", "queryParams",
             "port", "sourceLabels", "sourceNamespace", "name", "ignoreUriCase", "gateways"}
    for key in sorted(set(match) - known):
        preds.append(f"{key} {_inline(match[key])}")
    text = " and ".join(preds) or "everything"
    if match.get("gateways"):
        text += " " + " or ".join("from the mesh" if g == "mesh" else f"through gateway {g}"
                                  for g in match["gateways"])
    return text


def _string_match(m: Any) -> str:
    if isinstance(m, dict) and len(m) == 1:
        (how, value), = m.items()
        return "present" if value == "" and how == "regex" else f"{how} `{value}`"
    return "present" if m in ({}, None) else _inline(m)


def _route_text(route: dict) -> str:
    if _WHEN in route:
        when = f"when `{route[_WHEN]}` " if route[_WHEN] else ""
    else:
        matches = match_texts(route)
        when = f"on {' or '.join(matches)} " if matches else ""
    return f"{when}→ {action_text(route)}"


def _added_removed(old: dict, new: dict, added: Callable[[Any, Any], str],
                   removed: Callable[[Any], str]) -> list[str]:
    """Lines for the keys only ``new`` has (in its order), then for those only ``old`` has."""
    return ([added(k, v) for k, v in new.items() if k not in old]
            + [removed(k) for k in old if k not in new])


def _virtual_service(old: dict, new: dict, when_old: Mapping[str, str | None] | None = None,
                     when_new: Mapping[str, str | None] | None = None) -> list[str]:
    lines: list[str] = []
    lines += _set_change("host", old.get("hosts") or [], new.get("hosts") or [])
    lines += _set_change("gateway", old.get("gateways") or [], new.get("gateways") or [])
    r_old, r_new = _routes(old, when_old), _routes(new, when_new)
    lines += _added_removed(r_old, r_new, lambda k, r: f"new route {_route_name(k)} {_route_text(r)}",
                            lambda k: f"route {_route_name(k)} removed")
    common_old = [k for k in r_old if k in r_new]
    common_new = [k for k in r_new if k in r_old]
    if common_old != common_new:
        lines.append("routes reordered (first match wins): "
                     f"{', '.join(k[0] for k in common_old)} → {', '.join(k[0] for k in common_new)}")
    for key in common_new:
        lines += [f"route {_route_name(key)}: {s}" for s in _route_change(r_old[key], r_new[key])]
    for key in ("tcp", "tls"):  # Istio's TCP and TLS routes have no names: by position
        l_old, l_new = old.get(key) or [], new.get(key) or []
        for i in range(max(len(l_old), len(l_new))):
            if i >= len(l_old):
                lines.append(f"new {key} route {i + 1} {_route_text(l_new[i])}")
            elif i >= len(l_new):
                lines.append(f"{key} route {i + 1} removed")
            else:
                lines += [f"{key} route {i + 1}: {s}" for s in _route_change(l_old[i], l_new[i])]
    lines += _set_change("exportTo", old.get("exportTo") or [], new.get("exportTo") or [])
    return lines


def _ports_text(spec: dict) -> str:
    return ", ".join(f"{p.get('number')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []) or "none"


def _service_entry(old: dict, new: dict) -> list[str]:
    lines = _set_change("host", old.get("hosts") or [], new.get("hosts") or [])
    lines += _scalar("location", old.get("location"), new.get("location"))
    lines += _scalar("resolution", old.get("resolution"), new.get("resolution"))
    if _ports_text(old) != _ports_text(new):
        lines.append(f"ports {_ports_text(old)} → {_ports_text(new)}")
    lines += _field_changes(old, new, skip={"hosts", "location", "resolution", "ports"})
    if not lines and old != new:
        lines.append("entry changed")
    return lines


def _route_change(old: dict, new: dict) -> list[str]:
    lines: list[str] = []
    if old and action_text(old) != action_text(new):  # an empty old route has no action to compare
        lines.append(f"{action_text(old)} → {action_text(new)}")
    elif old and _dest_texts(old) != _dest_texts(new):  # same split, other hosts or ports
        lines.append(f"sends to {', '.join(_dest_texts(old))} → {', '.join(_dest_texts(new))}")
    if _WHEN in old and _WHEN in new:  # the spec's conditions, as written
        if old[_WHEN] != new[_WHEN]:
            lines.append(f"condition `{old[_WHEN]}` → `{new[_WHEN]}`" if old[_WHEN] and new[_WHEN] else
                         f"condition `{new[_WHEN]}` added" if new[_WHEN] else
                         f"condition `{old[_WHEN]}` removed: it matches everything")
    else:
        m_old, m_new = match_texts(old), match_texts(new)
        lines += [f"new match on {m}" for m in m_new if m not in m_old]
        lines += [f"match on {m} removed" for m in m_old if m not in m_new]
    if "retries" in old and "retries" in new and old["retries"] != new["retries"]:
        r_old, r_new = old["retries"], new["retries"]
        if r_old.get("attempts") != r_new.get("attempts"):
            lines.append(f"retries {r_old.get('attempts', 'default')} → {r_new.get('attempts', 'default')}")
        lines += [f"retries {s}" for s in _field_changes(r_old, r_new, skip={"attempts"})]
    else:
        lines += _presence("retries", old.get("retries"), new.get("retries"))
    lines += _scalar("timeout", old.get("timeout"), new.get("timeout"))
    lines += _block("fault injection", old.get("fault"), new.get("fault"), _fault_text)
    lines += _block("mirror", _mirror(old), _mirror(new), _mirror_text)
    known = {"name", "match", "route", "retries", "timeout", "fault", "mirror", "mirrorPercentage",
             "mirrors", "redirect", "directResponse", _WHEN}
    for key in sorted((set(old) | set(new)) - known):
        if old.get(key) != new.get(key):
            lines += _block(key, old.get(key), new.get(key), _inline)
    return lines


def _mirror(route: dict) -> dict | None:
    if not route.get("mirror"):
        return None
    return {"to": route["mirror"].get("subset") or route["mirror"].get("host"),
            "percent": (route.get("mirrorPercentage") or {}).get("value", 100)}


def _mirror_text(m: dict) -> str:
    return f"{m['percent']}% to {m['to']}"


def _fault_text(f: dict) -> str:
    parts = []
    if "delay" in f:
        d = f["delay"]
        parts.append(f"delay {d.get('fixedDelay', '?')} on {(d.get('percentage') or {}).get('value', 100)}%")
    if "abort" in f:
        a = f["abort"]
        code = a.get("httpStatus", a.get("grpcStatus", "?"))
        parts.append(f"abort {code} on {(a.get('percentage') or {}).get('value', 100)}%")
    return ", ".join(parts) or _inline(f)


# ------------------------------------------------------------------ DestinationRule


def _destination_rule(old: dict, new: dict) -> list[str]:
    lines: list[str] = []
    if old.get("host") != new.get("host"):
        lines.append(f"host {old.get('host')} → {new.get('host')}")
    lines += _policy_change("", old.get("trafficPolicy") or {}, new.get("trafficPolicy") or {})
    s_old = {s.get("name"): s for s in old.get("subsets") or []}
    s_new = {s.get("name"): s for s in new.get("subsets") or []}
    lines += _added_removed(s_old, s_new, lambda n, s: f"new subset {n} ({_labels(s)})",
                            lambda n: f"subset {n} removed")
    for name in s_new:
        if name in s_old:
            a, b = s_old[name], s_new[name]
            if a.get("labels") != b.get("labels"):
                lines.append(f"subset {name} selects {_labels(b)} instead of {_labels(a)}")
            lines += _policy_change(f"subset {name}: ", a.get("trafficPolicy") or {},
                                    b.get("trafficPolicy") or {})
    return lines


def _labels(subset: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((subset.get("labels") or {}).items())) or "all pods"


def _policy_change(prefix: str, old: dict, new: dict) -> list[str]:
    lines = []
    for key in [k for k in POLICY_NAMES if k in old or k in new] + \
            sorted((set(old) | set(new)) - set(POLICY_NAMES)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        name = POLICY_NAMES.get(key, key)
        if key == "tls" and a and b and a.get("mode") != b.get("mode"):
            lines.append(f"{prefix}TLS mode {a.get('mode')} → {b.get('mode')}")
            continue
        lines += [prefix + s for s in _block(name, a, b, _inline)]
    return lines


# ------------------------------------------------------------------ Gateway


def _gateway_hosts(spec: dict) -> list[str]:
    """Every host of every server, once each (an HTTPS server repeats the HTTP one's hosts)."""
    return _unique(h for s in spec.get("servers") or [] for h in s.get("hosts") or [])


def _gateway(old: dict, new: dict) -> list[str]:
    lines = _set_change("host", _gateway_hosts(old), _gateway_hosts(new))
    if old.get("selector") != new.get("selector"):
        lines.append(f"selects gateway workload {_inline(new.get('selector'))} "
                     f"instead of {_inline(old.get('selector'))}")
    ports_old = _unique((s.get("port") or {}).get("number") for s in old.get("servers") or [])
    ports_new = _unique((s.get("port") or {}).get("number") for s in new.get("servers") or [])
    lines += _set_change("port", ports_old, ports_new)
    if not lines and old != new:
        lines.append("servers changed")
    return lines


# ------------------------------------------------------------------ wording helpers


def _unique(items: Iterable[Any]) -> list[Any]:
    """``items`` without repeats, in first-seen order."""
    return list(dict.fromkeys(items))


def _set_change(what: str, old: list, new: list) -> list[str]:
    lines = [f"{what} {x} added" for x in new if x not in old]
    return lines + [f"{what} {x} removed" for x in old if x not in new]


def _presence(name: str, old: Any, new: Any) -> list[str]:
    if old is None and new is not None:
        return [f"{name} added ({_brief(new)})"]
    if old is not None and new is None:
        return [f"{name} removed"]
    return []


def _scalar(name: str, old: Any, new: Any) -> list[str]:
    if old == new:
        return []
    if old is None:
        return [f"{name} {new} added"]
    if new is None:
        return [f"{name} {old} removed"]
    return [f"{name} {old} → {new}"]


def _block(name: str, old: Any, new: Any, text) -> list[str]:
    if old == new:
        return []
    if old is None:
        return [f"{name} added ({text(new) if text is not _inline else _brief(new)})"]
    if new is None:
        return [f"{name} removed"]
    if isinstance(old, dict) and isinstance(new, dict):
        changes = _field_changes(old, new)
        return [f"{name}: {', '.join(changes)}"] if changes else []
    return [f"{name}: {text(old)} → {text(new)}"]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _field_changes(old: dict, new: dict, skip: set[str] = frozenset()) -> list[str]:
    """``["interval 1s → 5s", "baseEjectionTime 3m removed"]`` for two nested dicts."""
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in [k for k in b if k not in skip] + [k for k in a if k not in b and k not in skip]:
        lines += _scalar(key, _inline_scalar(a.get(key)), _inline_scalar(b.get(key)))
    return lines


def _brief(value: Any) -> str:
    """``tcp.maxConnections 100, http.http1MaxPendingRequests 1`` for a nested dict."""
    if not isinstance(value, dict):
        return _inline(value)
    return ", ".join(f"{k} {_inline(v)}" for k, v in _flatten(value).items())


def _inline_scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else _inline(value)


def _inline(value: Any) -> str:
    """A compact one-line rendering of a YAML value (``{a: 1, b: x}``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- YAML diff


def unified_diff(base_files: Mapping[str, bytes], head_files: Mapping[str, bytes],
                 context: int = 3) -> str:
    """The unified diff of two renderings, file by file in path order (``git diff`` style)."""
    chunks = []
    for path in sorted(set(base_files) | set(head_files)):
        a, b = base_files.get(path), head_files.get(path)
        if a == b:
            continue
        chunks.extend(difflib.unified_diff(
            _lines(a), _lines(b),
            fromfile=f"a/{path}" if a is not None else "/dev/null",
            tofile=f"b/{path}" if b is not None else "/dev/null", n=context))
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in chunks)


def _lines(data: bytes | None) -> list[str]:
    return [] if data is None else data.decode("utf-8", "replace").splitlines(keepends=True)


# --------------------------------------------------------------------------- output


def headline(d: Diff) -> str:
    """``ratings, reviews changed in dev, prod; 3 files`` or ``no change ...``."""
    if not d.changes and not d.yaml_diff:
        return "no change to the rendered output"
    apps = sorted({c.app for c in d.changes if not c.env.startswith("_")})
    envs = sorted({c.env for c in d.changes if not c.env.startswith("_")})
    files = f"{d.changed_files} file{'' if d.changed_files == 1 else 's'}"
    if not apps:
        return f"{files} changed"
    return f"{', '.join(apps)} changed in {', '.join(envs)}; {files}"


def grouped(changes: list[AppChange]) -> list[tuple[str, AppChange]]:
    """Changes with the same words in several environments, folded into one entry.

    A spec change without environment overrides changes every environment alike; the reviewer
    reads it once, titled ``ratings/dev, prod, staging``. Order: by the first environment,
    then app.
    """
    groups: dict[tuple, list[AppChange]] = {}
    for c in changes:
        groups.setdefault((c.app, c.namespace, c.objects, c.traffic), []).append(c)
    out = []
    for same in groups.values():
        if same[0].env == "_gitops":
            title = GITOPS_TITLES.get(same[0].app, same[0].app)
        else:
            title = f"{same[0].app}/{', '.join(c.env for c in same)}"
        out.append((title, same[0]))
    return sorted(out, key=lambda tc: (tc[1].env, tc[1].app))


def format_text(d: Diff) -> str:
    """The summary, then the unified YAML diff, for a terminal."""
    out = [f"meshgen diff {d.base_label} → {d.head_label}: {headline(d)}"]
    out += [f"note: {n}" for n in d.notes]
    for title, c in grouped(d.changes):
        out.append("")
        out.append(f"{title}: {c.objects_text()}")
        out += [f"  {line}" for line in c.traffic]
    if d.yaml_diff:
        out += ["", d.yaml_diff.rstrip("\n")]
    return "\n".join(out) + "\n"


def format_markdown(d: Diff) -> str:
    """The summary as GitHub-flavoured markdown, the YAML diff folded in ``<details>``.

    Ready to post as a pull-request comment; starts with :data:`MARKDOWN_MARKER` so a CI job
    can find and update its earlier comment. A YAML diff over :data:`MARKDOWN_LIMIT`
    characters is cut at a file boundary with a note.
    """
    out = [MARKDOWN_MARKER, f"### meshgen diff `{d.base_label}` → `{d.head_label}`", "",
           f"**{headline(d)}**"]
    out += ["", *[f"> {n}" for n in d.notes]] if d.notes else []
    for title, c in grouped(d.changes):
        out += ["", f"**{title}** — {c.objects_text()}"]
        out += [f"- {line}" for line in c.traffic]
    if d.yaml_diff:
        text, cut = _cut(d.yaml_diff, MARKDOWN_LIMIT)
        out += ["", f"<details><summary>YAML diff ({d.changed_files} "
                f"file{'' if d.changed_files == 1 else 's'})</summary>", "",
                "```diff", text.rstrip("\n"), "```"]
        if cut:
            out += ["", f"*{cut} more files left out; run `meshgen diff` locally for all of it.*"]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def _cut(text: str, limit: int) -> tuple[str, int]:
    if len(text) <= limit:
        return text, 0
    files = text.split("\n--- ")
    kept, size = [files[0]], len(files[0])
    for chunk in files[1:]:
        if size + len(chunk) + 5 > limit:
            break
        kept.append(chunk)
        size += len(chunk) + 5
    return "\n--- ".join(kept), len(files) - len(kept)


# --------------------------------------------------------------------------- git shell


def default_base(repo: git.Repo) -> str:
    """The ref ``meshgen diff`` compares with when ``--base`` is not given.

    What a reviewer expects is what a pull request shows: the change since the branch left
    its upstream. So the base is the merge-base of ``HEAD`` with the first of the current
    branch's upstream, ``origin/HEAD``, ``origin/main``, ``main``, ``origin/master``,
    ``master`` that exists; with none of them, ``HEAD`` (the uncommitted changes only).
    On ``main`` itself this is ``HEAD``, so ``meshgen diff`` shows the uncommitted changes.

    Raises:
        errors.GitError: the repository has no commit.
    """
    try:
        head = repo.head.commit
    except ValueError as e:
        raise errors.GitError("the repository has no commit to compare with") from e
    candidates = []
    try:
        tracking = repo.active_branch.tracking_branch()
        if tracking is not None:
            candidates.append(tracking.name)
    except TypeError:  # detached HEAD
        pass
    candidates += ["origin/HEAD", "origin/main", "main", "origin/master", "master"]
    for ref in candidates:
        try:
            other = repo.commit(ref)
        except (git.BadName, ValueError):
            continue
        bases = repo.merge_base(head, other)
        if bases:
            return bases[0].hexsha
    return head.hexsha


def conditions(rendering: render.Rendering) -> Conditions:
    """The spec conditions of every rendered app's routes, as :func:`compare` takes them."""
    repo = rendering.repo
    rendered = {(o.env, o.app) for o in rendering.objects}
    return {(env, app): {r["name"]: " ".join(str(r["when"]).split()) if r.get("when") else None
                         for r in repo.effective_app(app, env).spec.get("routes") or []
                         if isinstance(r, dict) and "name" in r}
            for env, app in sorted(rendered)}


def diff_repo(root: Path, base: str | None = None) -> Diff:
    """Render ``base`` (default :func:`default_base`) and the working tree, and compare.

    The base is checked out into a temporary detached ``git worktree``, rendered with this
    meshgen (so a template change in meshgen itself does not show as a spec change), and
    the worktree is removed afterwards, also on error. A base that does not render (say, a
    spec error that this change fixes) is compared through its committed ``rendered/`` files.

    Raises:
        errors.UsageError: ``root`` is not a git repository or ``base`` names no commit.
        errors.SpecErrors: the working tree does not render.
        errors.GitError: ``git worktree`` failed.
    """
    try:
        repo = git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
        raise errors.UsageError(f"{root} is not a git repository; meshgen diff compares git revisions") from e
    top = Path(repo.working_tree_dir).resolve()
    sub = Path(root).resolve().relative_to(top)
    ref = base or default_base(repo)
    try:
        commit = repo.commit(ref)
    except (git.BadName, ValueError) as e:
        raise errors.UsageError(f"--base {ref}: no such commit") from e
    head_rendering = render.render_repo(root)
    head_files, head_when = head_rendering.files, conditions(head_rendering)
    base_when: Conditions | None = None
    base_objects: dict[str, Any] | None = None
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="meshgen-diff-") as tmp:
        tree = Path(tmp) / "base"
        try:
            repo.git.worktree("add", "--detach", str(tree), commit.hexsha)
        except git.GitCommandError as e:
            raise errors.GitError(f"git worktree add failed: {' '.join((e.stderr or str(e)).split())}") from e
        try:
            base_root = tree / sub
            try:
                base_rendering = render.render_repo(base_root)
                base_files, base_when = base_rendering.files, conditions(base_rendering)
                base_objects = objects_of(base_rendering)
            except errors.SpecErrors as e:
                n = len(e.errors)
                notes.append(f"the base does not render ({n} spec error{'s' if n != 1 else ''}); "
                             f"compared with its committed rendered/ files")
                base_files = {p.relative_to(base_root).as_posix(): p.read_bytes()
                              for p in sorted((base_root / "rendered").rglob("*")) if p.is_file()}
        finally:
            try:
                repo.git.worktree("remove", "--force", str(tree))
            except git.GitCommandError as e:
                raise errors.GitError(f"git worktree remove failed: {' '.join((e.stderr or str(e)).split())}") from e
    label = f"{base}@{commit.hexsha[:7]}" if base and not commit.hexsha.startswith(base) else commit.hexsha[:7]
    dirty = repo.is_dirty(untracked_files=True)
    head_label = "working tree" if dirty else f"HEAD@{repo.head.commit.hexsha[:7]}"
    d = compare(base_files, head_files, base_label=label, head_label=head_label,
                base_when=base_when, head_when=head_when, base_objects=base_objects,
                head_objects=objects_of(head_rendering))
    d.notes = notes
    return d
