"""Route tests written in the spec: requests with the route and versions they must reach.

An App lists them under ``spec.tests`` (an environment adds or replaces them through its
``spec.apps.<app>.spec.tests`` override, merged by ``name`` like routes)::

    tests:
      - name: jason-sees-v2
        request: {uri: /reviews/1, headers: {end-user: jason}}
        expect: {route: jason, versions: {v2: 100}}
      - request: {uri: /admin, gateway: mesh/reviews-gateway}
        expect: {route: null, status: 404}

``meshgen check`` runs every test of every app in every environment on
what the spec renders (in memory, the VirtualService Istio would get), with the same model as
``meshgen explain`` (:mod:`generator.render.explain`), and report each mismatch at the test's
place as ``path:line:col: error: ...``. A test's ``versions`` are the rendered weights, a
rollout's current step included.
"""

from __future__ import annotations

import difflib
from typing import Any

from generator.errors import SpecError, UsageError, as_yaml
from generator import targets
from generator.render import explain as explain_mod
from generator.routing import simulate


def _describe(ask: explain_mod.Ask, result: explain_mod.Explanation) -> str:
    r = result.request
    parts = [f"{r.method} {ask.uri}"]
    parts += [f"header {k}: {v}" for k, v in ask.headers.items()]
    parts += [f"query {k}={v}" for k, v in ask.query.items()]
    if ask.authority:
        parts.append(f"authority {ask.authority}")
    if ask.port is not None:
        parts.append(f"port {ask.port}")
    if ask.source_namespace is not None:
        parts.append(f"from namespace {ask.source_namespace}")
    parts += [f"source label {k}={v}" for k, v in ask.source_labels.items()]
    parts.append("through the mesh" if r.gateway == "mesh" else f"through gateway {r.gateway}")
    return ", ".join(parts)


def _weights(versions: dict[str, int]) -> str:
    return "{" + ", ".join(f"{v}: {w}" for v, w in versions.items()) + "}"


def _outcome(result: explain_mod.Explanation) -> str:
    if result.outcome == explain_mod.NOT_SERVED:
        names = ", ".join(result.domains) or "no name"
        fate = ("the sidecar passes it through (PassthroughCluster)" if result.request.gateway == "mesh"
                else "answered 404")
        return f"reaches no route: its authority is not served by the VirtualService here ({names}); {fate}"
    if result.outcome == simulate.OMITTED and result.request.gateway == "mesh":
        return "reaches every version through the Service's default route (no route applies to this proxy)"
    text = f"takes route {as_yaml(result.spec_route)}" if result.spec_route else "takes no route"
    if result.destinations:
        text += f" {_weights(result.destinations)}"
    if result.status is not None:
        text += f", answered {result.status}"
    return text


def run_test(rendered: explain_mod.Rendered, test: dict[str, Any], routes: list[str],
             versions: list[str], rollout_route: str | None) -> tuple[str, str | None] | None:
    """``(message, hint)`` of one failing test, or ``None`` when it passes.

    Raises:
        UsageError: the test's ``request.gateway`` is not bound (turned into a spec error by
            :func:`check`).
    """
    ask = explain_mod.Ask.from_json(test.get("request") or {})
    expect = test.get("expect") or {}
    result = rendered.explain(ask)
    wrong, hints = [], []
    if "route" in expect and expect["route"] != result.spec_route:
        wrong.append(f"route {as_yaml(expect['route'])}" if expect["route"] else "no route")
        if expect["route"] and expect["route"] not in routes:
            close = difflib.get_close_matches(expect["route"], routes, n=1)
            hints.append(f"the app has no route {as_yaml(expect['route'])}" + (
                f"; did you mean {as_yaml(close[0])}?" if close else f" (routes: {', '.join(routes)})"))
    if "versions" in expect:
        want = {v: w for v, w in expect["versions"].items() if w}
        got = dict(result.destinations)
        if result.outcome == simulate.OMITTED and result.request.gateway == "mesh":
            got = {}
        if want != got:
            wrong.append(f"versions {_weights(want)}")
            unknown = [v for v in want if v not in versions]
            if unknown:
                hints.append(f"the app has no version {as_yaml(unknown[0])} (versions: {', '.join(versions)})")
            elif rollout_route and result.spec_route == rollout_route:
                hints.append(f"route {as_yaml(rollout_route)} is under rollout: the bot moves its weights; "
                             "expect its route, not its versions")
    if "status" in expect and expect["status"] != result.status:
        wrong.append(f"status {expect['status']}" if expect["status"] else "a forwarded request")
    if not wrong:
        return None
    return f"{_describe(ask, result)}: {_outcome(result)}; expected {' and '.join(wrong)}", "; ".join(hints) or None


def check(rendering: Any) -> list[SpecError]:
    """Run the route tests of every app in every rendered environment.

    Args:
        rendering: a :class:`generator.render.render.Rendering` (what the specs render, in memory).

    Returns:
        One :class:`SpecError` per failing test (one for a test that fails alike in several
        environments), placed at the test in the file it came from.
    """
    by_app: dict[tuple[str, str], list[Any]] = {}
    for o in rendering.objects:
        by_app.setdefault((o.env, o.app), []).append(o)
    failures: dict[tuple[Any, str, str | None], list[str]] = {}
    repo = rendering.repo
    for (env, name), objs in by_app.items():
        target = targets.of_objects(o.obj for o in objs)
        if target is None:
            continue
        app = repo.effective_app(name, env)
        tests = app.spec.get("tests") or []
        if not tests:
            continue
        route_path = next(o.path for o in objs if o.kind in target.route_kinds)
        vs_obj, gateways = target.as_virtual_service([o.obj for o in objs])
        versions = list(app.spec.get("versions") or {})
        rendered = explain_mod.Rendered(route_path, vs_obj, gateways, versions)
        routes = [r["name"] for r in app.spec.get("routes") or []]
        rollout_route = (app.spec.get("rollout") or {}).get("route")
        for i, test in enumerate(tests):
            label = f"route test {as_yaml(test['name'])}" if test.get("name") else f"route test {i + 1}"
            try:
                failure = run_test(rendered, test, routes, versions, rollout_route)
            except UsageError:
                gateway = (test.get("request") or {}).get("gateway")
                key = (app.place("spec", "tests", i, "request", "gateway"),
                       f"{label}: the app's VirtualService does not bind gateway {as_yaml(gateway)}",
                       f"write one of: {', '.join(rendered.bound_gateways)}")
                failures.setdefault(key, []).append(env)
                continue
            if failure is not None:
                key = (app.place("spec", "tests", i), f"{label}: {failure[0]}", failure[1])
                failures.setdefault(key, []).append(env)
    # a test of the app itself fails alike in every environment: one error naming them all
    return [SpecError(f"{message} (in {', '.join(envs)})", place=place, hint=hint)
            for (place, message, hint), envs in failures.items()]
