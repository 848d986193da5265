"""Built-in templates filled once per shape (generator.render.shapes): the objects built from a
shape are those filling and parsing back gives, byte for byte once dumped, for any values."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generator import resources
from generator.render import render, shapes
from generator.spec import loader, templating

KINDS = sorted(render.TEMPLATES)

scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.sampled_from([0, 0.0, -0.0, ""])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["true", "1", "null", "~", "- destination:", "{}", "a: b", "\u2028", "\ud800", "é"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6) | st.sampled_from(["name", "labels", "hosts"]),
                                        inner, max_size=3), max_leaves=12)
subset = st.fixed_dictionaries({"name": values, "labels": values, "trafficPolicy": values})
contexts = st.fixed_dictionaries({
    "name": values, "namespace": values, "labels": values, "annotations": values, "host": values,
    "export_to": values, "traffic_policy": values, "subsets": st.lists(subset, max_size=2) | values,
    "hosts": values, "gateways": values, "http": values, "tcp": values,
    "tls": st.fixed_dictionaries({}, optional={"credentialName": values}) | values,
    "gateway_name": values, "selector": values, "expose_hosts": values, "servers": values,
    "https_redirect": values, "entry": values})


@pytest.fixture(scope="module")
def templates() -> dict[str, jinja2.Template]:
    """The built-in templates, in the environment the renderer fills them in."""
    env = templating.BoundedEnvironment(loader=jinja2.FileSystemLoader(str(resources.templates_dir())),
                                        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["q"] = render.quote
    return {kind: env.get_template(name) for kind, name in render.TEMPLATES.items()}


def filled(template: jinja2.Template, context: dict[str, Any]) -> Any:
    """The object as filling and parsing back gives it, or the exception doing so raises."""
    try:
        return render.dump(loader.parse_plain(template.render(context)))
    except Exception as e:  # noqa: BLE001 - the same failure is what is compared
        return type(e)


def built(made: shapes.Shapes, template: jinja2.Template, context: dict[str, Any]) -> Any:
    try:
        return render.dump(made.build(template, context))
    except shapes.Unshaped:
        return None


def _same_kind(value: Any, draw: Any) -> Any:
    """Another true scalar of ``value``'s kind (what a second app of the same shape holds)."""
    if isinstance(value, str):
        return draw(st.text(min_size=1, max_size=12).filter(lambda s: not shapes._SURROGATE.search(s)))
    if isinstance(value, int):
        return draw(st.integers(-10**6, 10**6).filter(bool))
    return draw(st.floats(allow_nan=True).filter(lambda f: math.isnan(f) or f != 0))


def _refill(value: Any, new: list[Any]) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: _refill(v, new) for k, v in value.items()}
    if kind in (list, tuple):
        return kind(_refill(v, new) for v in value)
    if kind is bool or value is None or not value:
        return value
    return new.pop(0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(kind=st.sampled_from(KINDS), first=contexts, data=st.data())
def test_an_object_built_from_its_shape_is_the_filled_one(templates: dict[str, jinja2.Template], kind: str,
                                                          first: dict[str, Any], data: st.DataObject) -> None:
    """For every built-in template: the first context of a shape is filled; a second context
    of that shape (other strings, numbers, the same keys, lengths and truths) is built, and
    dumps to the bytes filling and parsing it back dumps to. A context the shapes cannot stand
    for is filled every time, and so is one whose template fails."""
    template = templates[kind]
    made = shapes.Shapes(lambda t, c: t.render(c), loader.parse_plain)
    try:
        held: list[Any] = []
        shapes._shape(first, held)
    except shapes.Unshaped:
        assert built(made, template, first) is None and built(made, template, first) is None
        return
    second = _refill(first, [_same_kind(v, data.draw) for v in held])
    assert built(made, template, first) is None  # first of its shape: filled
    for context in (second, first):
        fast = built(made, template, context)
        slow = filled(template, context)
        if fast is None:
            continue  # filled the usual way
        assert fast == slow


APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: app-{i}, namespace: team-{team}}}
spec:
  service: {{host: app-{i}, port: 8080}}
  versions: {{v1: {{labels: {{version: v1}}}}, v2: {{labels: {{version: v2}}}}}}
  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}
{expose}  routes:
    - {{name: default, to: {{v1: 90, v2: 10}}, timeout: 5s}}
"""


def _unshaped(self: shapes.Shapes, template: Any, context: Any) -> Any:
    raise shapes.Unshaped


def test_a_fleet_of_alike_apps_fills_each_template_twice_per_shape(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """30 apps written alike, in three environments: each built-in template is filled for the
    first two contexts of each shape only (the rest are built; an exposed app's VirtualService
    has a shape of its own), and the files are the bytes filling every object gives."""
    (tmp_path / "apps").mkdir()
    (tmp_path / "environments").mkdir()
    for i in range(30):
        expose = f"  expose: {{hosts: [app-{i}.example.com]}}\n" if i % 4 == 0 else ""
        (tmp_path / "apps" / f"app-{i}.yaml").write_text(APP.format(i=i, team=i % 3, expose=expose))
    for env in ("dev", "staging", "prod"):
        (tmp_path / "environments" / f"{env}.yaml").write_text(
            f"apiVersion: meshgen.io/v1alpha1\nkind: Environment\nmetadata: {{name: {env}}}\n"
            "spec: {ingress: {selector: {istio: ingressgateway}}}\n")
    fills: list[str] = []
    real = jinja2.Template.render

    def counting(self: jinja2.Template, *args: Any, **kwargs: Any) -> str:
        fills.append(self.name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(jinja2.Template, "render", counting)
    fast = render.render_repo(tmp_path, cache=False)
    assert len(fast.objects) == 3 * (30 + 30 + 8)  # a DestinationRule and a VirtualService each, a Gateway every 4th
    assert {name: fills.count(name) for name in set(fills)} == {
        "destinationrule.yaml.j2": 2, "virtualservice.yaml.j2": 4, "gateway.yaml.j2": 2, "kustomization.yaml.j2": 3}
    monkeypatch.setattr(shapes.Shapes, "build", _unshaped)  # every object filled and parsed back
    assert render.render_repo(tmp_path, cache=False).files == fast.files


def test_the_dump_cache_shares_text_only_between_objects_alike_but_for_their_environment() -> None:
    """Objects that differ only in their environment label share one dump; a value of another
    type (``1``, ``"1"``, ``True``, ``1.0``) or a key of another type is never taken for it."""
    def obj(env: str, value: Any, key: Any = "k") -> dict[str, Any]:
        return {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "a", "labels": {"meshgen.io/environment": env}},
                "spec": {key: value, "other": "meshgen.io/environment: dev"}}

    cache = render._DumpCache()
    for env in ("dev", "staging", "prod"):
        for value in (1, "1", True, 1.0, None, [1], {"1": 1}):
            for key in ("k", 1, "1"):
                made = obj(env, value, key)
                assert cache.dump(made, env) == render.dump(made)
                assert made == obj(env, value, key)  # the label is put back


dump_scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.sampled_from([0, 0.0, -0.0, 1.5, 1e17, ""])
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=12) | st.from_regex(r"[a-z][a-z0-9.-]{0,10}", fullmatch=True)
                | st.sampled_from(["true", "Yes", "yEs", "1", "5s", "null", "~", "- a", "a: b", "a #b", "#a",
                                   "q7mgv0q7", "x q7mgv1q7", "%s", "a%b", "---", "...", "é", "\u2028", " a",
                                   "a ", "a\nb", "ISTIO_MUTUAL", "app-1.example.com", "*.example.com", "=", "<<"]))
dump_values = st.recursive(dump_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6) | st.sampled_from(["name", "q7mgv0q7", "a%"]),
                                             inner, max_size=3), max_leaves=14)


def _dump_refill(value: Any, draw: Any) -> Any:
    """``value`` with each string, integer and float replaced by another of its kind (a second
    object of the same keys and lengths, with other scalars)."""
    kind = type(value)
    if kind is dict:
        return {k: _dump_refill(v, draw) for k, v in value.items()}
    if kind is list:
        return [_dump_refill(v, draw) for v in value]
    if kind is str:
        return draw(dump_scalars.filter(lambda s: isinstance(s, str)))
    if kind is int:
        return draw(st.integers(-10**9, 10**9))
    if kind is float:
        return draw(st.floats(allow_nan=True, allow_infinity=True))
    return value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(first=dump_values, data=st.data())
def test_an_object_dumped_from_its_shape_is_the_dump_byte_for_byte(first: Any, data: st.DataObject) -> None:
    """Objects of one shape dumped through :class:`shapes.Dumps` (strings YAML writes plain or
    quotes, integers, floats (nan, infinities, exponents, -0.0), bools, nulls, keys and values
    that look like its placeholders or hold ``%``) are the bytes the dump writes, sorted or
    in the keys' order; what it refuses it says so."""
    in_order = functools.partial(yaml.dump, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False,
                                 width=1 << 16)
    objects = [first, _dump_refill(first, data.draw), _dump_refill(first, data.draw), first]
    for dump in (render.dump, in_order):
        dumps = shapes.Dumps(dump)
        for obj in objects:
            try:
                text = dumps.dump(obj)
            except shapes.Unshaped:
                continue
            assert text == dump(obj)


def test_a_node_held_twice_is_dumped_with_its_anchor() -> None:
    """A mapping held twice in one object is written with an anchor and an alias: never from
    the shape of an object holding two equal mappings."""
    dumps = shapes.Dumps(render.dump)
    twice = {"a": {"b": "c"}, "d": {"b": "c"}}
    assert dumps.dump(twice) == render.dump(twice)
    shared = {"b": "c"}
    with pytest.raises(shapes.Unshaped):
        dumps.dump({"a": shared, "d": shared})


def test_a_fleet_of_alike_apps_is_dumped_once_per_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """30 apps written alike, in three environments, on both targets: objects alike but for
    plain scalars (names, hosts, the environment label) are dumped once per shape, and the
    files are the bytes dumping every object gives."""
    (tmp_path / "apps").mkdir()
    (tmp_path / "environments").mkdir()
    for i in range(30):
        expose = f"  expose: {{hosts: [app-{i}.example.com]}}\n" if i % 4 == 0 else ""
        (tmp_path / "apps" / f"app-{i}.yaml").write_text(APP.format(i=i, team=i % 3, expose=expose))
    for target in ("istio", "gateway-api"):
        for env in ("dev", "staging", "prod"):
            (tmp_path / "environments" / f"{env}.yaml").write_text(
                f"apiVersion: meshgen.io/v1alpha1\nkind: Environment\nmetadata: {{name: {env}}}\n"
                f"spec: {{target: {target}, ingress: {{selector: {{istio: ingressgateway}}}}}}\n")
        dumped: list[Any] = []
        real = render.dump

        def counting(obj: Any) -> str:
            dumped.append(obj)
            return real(obj)

        monkeypatch.setattr(render, "dump", counting)
        fast = render.render_repo(tmp_path, cache=False)
        monkeypatch.setattr(render, "dump", real)
        objects = [o for o in fast.objects]
        kinds = {o.kind for o in objects}
        whole = [o for o in dumped if isinstance(o, dict) and o.get("kind") in kinds]
        assert len(objects) >= 3 * 30 * 2
        assert len(whole) <= 2 * len(kinds), (target, sorted(o["kind"] for o in whole))
        for o in objects:
            assert fast.files[o.path].decode().split("\n", 1)[1] == real(o.obj), o.path
