"""Render a config repository into Istio objects, one file each, byte-deterministic.

For each environment and each app: merge the environment's overrides into the App spec
(:mod:`generator.spec.config`), check it (:mod:`generator.render.checks`), apply the rollout status if the
bot has one, put the routes in Istio's terms, and ask the environment's output target
(:mod:`generator.targets`, ``spec.target``) for the app's objects: an object it builds itself,
or the values of a Jinja2 template (one per Istio kind, a repo's own ``templates/`` overriding
the built-ins by file name) that the renderer fills and parses back with PyYAML's C loader (a
built-in template once per shape of its context, see :mod:`generator.render.shapes`); check the
object, and dump it canonically with the C dumper. The renderer never asks which target it is.
The result is in memory (:class:`Rendering`); :mod:`generator.render.output` writes it.

Output layout (DESIGN §5): ``rendered/<env>/<namespace>/<app>/{destinationrule,virtualservice,gateway}.yaml``
and ``rendered/<env>/kustomization.yaml``. Each file starts with a comment naming its sources and
carries the label ``app.kubernetes.io/managed-by: meshgen``.
"""

from __future__ import annotations

import functools
import marshal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import jinja2
import yaml

from generator import resources
from generator.errors import Place, SpecError, SpecErrors, UsageError, as_yaml
from generator.render import analysis, cel, checks, manifests, output, shapes, timelimit
from generator.render.quoting import quote
from generator.routing import compiler as routing
from generator.rollout import decision, groups, promotion
from generator.spec import loader, paths, schema, status, templating
from generator.spec.config import EffectiveApp, Repo, load_repo
from generator import targets

HEADER = output.HEADER
MANAGED_BY = {"app.kubernetes.io/managed-by": "meshgen"}
#: Longest text one repository template may render for one object (characters).
MAX_OBJECT_TEXT = 1_000_000

TEMPLATES = {"DestinationRule": "destinationrule.yaml.j2", "VirtualService": "virtualservice.yaml.j2",
             "Gateway": "gateway.yaml.j2", "ServiceEntry": "serviceentry.yaml.j2"}
KUSTOMIZATION_TEMPLATE = "kustomization.yaml.j2"
ISTIO_API = "networking.istio.io/v1"


@dataclass
class RenderedObject:
    """One rendered Istio object and where it came from.

    Attributes:
        env: environment name.
        app: app name.
        namespace: Kubernetes namespace of the object.
        kind: ``DestinationRule``, ``VirtualService`` or ``Gateway``.
        obj: the object as plain values (what the file holds, without the header comment).
        path: repository-relative POSIX path of its file.
        place: place of the spec value it mainly comes from (for analysis messages).
        sources: repository-relative paths of the spec files it came from.
    """

    env: str
    app: str
    namespace: str
    kind: str
    obj: dict[str, Any]
    path: str
    place: Place
    sources: list[str] = field(default_factory=list)


@dataclass
class Rendering:
    """Everything one render produced, in memory.

    Attributes:
        files: ``{repository-relative path: exact bytes}`` of every file under ``rendered/``
            for the rendered environments (kustomizations included).
        objects: the rendered Istio objects, in file order.
        envs: the environments rendered.
        all_envs: every environment of the repository.
        rendered_dir: repository-relative directory of the output (``rendered`` by default).
        root: the repository root.
        applied: ``{(env, app): (stable, canary, canaryWeight)}`` of each rollout whose status
            file set its route's weights, ``None`` for a rollout rendered without one (the
            rollout bot checks this against the status it commits).
    """

    files: dict[str, bytes]
    objects: list[RenderedObject]
    envs: list[str]
    all_envs: list[str]
    rendered_dir: str
    root: Path
    applied: dict[tuple[str, str], tuple[str, str, int] | None] = field(default_factory=dict)

    @functools.cached_property
    def repo(self) -> Repo:
        """The loaded repository (loaded again on first use when the rendering came from the cache)."""
        return load_repo(self.root)

    @property
    def object_count(self) -> int:
        """``len(objects)`` (a cached rendering, :class:`~generator.render.cache.CachedRendering`,
        knows it without unpickling them)."""
        return len(self.objects)


def service_fqdn(app: EffectiveApp) -> str:
    """The Service's fully qualified host: a short ``host`` is resolved in the app's namespace."""
    host = app.spec["service"]["host"]
    return host if "." in host else f"{host}.{app.namespace}.svc.cluster.local"


class _RepoTemplateLoader(jinja2.FileSystemLoader):
    """The repository's ``templates/``: every template, included ones too, a regular file inside
    the repository (see :mod:`generator.spec.paths`)."""

    def __init__(self, root: Path, directory: Path, shown: str) -> None:
        super().__init__(str(directory))
        self.root, self.directory, self.shown = root, directory, shown

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        path = self.directory / template
        problem = paths.input_problem(self.root, path, f"{self.shown}/{template}")
        if problem is not None:
            raise jinja2.TemplateError(problem.format())
        return super().get_source(environment, template)


def _jinja(repo: Repo) -> jinja2.Environment:
    loaders = []
    own = repo.dir("templates")
    if own.is_dir():
        loaders.append(_RepoTemplateLoader(repo.root, own, repo.rel("templates")))
    loaders.append(jinja2.FileSystemLoader(str(resources.templates_dir())))
    env = templating.BoundedEnvironment(loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
                                        autoescape=False, keep_trailing_newline=True)
    env.filters["q"] = quote
    return env


def _load_templates(repo: Repo, jinja: jinja2.Environment, names: list[str]) -> dict[str, jinja2.Template]:
    """Compile the named templates.

    Raises:
        SpecErrors: a repository's own template is not valid Jinja2, placed at its line.
    """
    loaded, errors = {}, []
    own = repo.dir("templates")
    problem = paths.input_problem(repo.root, own, repo.rel("templates"), directory=True)
    if problem is not None:
        raise SpecErrors([problem])
    for name in names:
        problem = paths.input_problem(repo.root, own / name, f"{repo.rel('templates')}/{name}")
        if problem is not None:
            errors.append(problem)
            continue
        try:
            loaded[name] = jinja.get_template(name)
        except jinja2.TemplateSyntaxError as e:
            where = Place(f"{repo.rel('templates')}/{name}", e.lineno or 0, 1 if e.lineno else 0)
            errors.append(SpecError(f"template syntax error: {e.message}", place=where))
    SpecErrors.collect(errors)
    return loaded


def _overridden(repo: Repo, name: str) -> bool:
    own = repo.dir("templates") / name
    if not own.is_file():
        return False
    return own.read_bytes() != (resources.templates_dir() / name).read_bytes()


def dump(obj: Any) -> str:
    """Canonical YAML of a plain object: PyYAML's C dumper, block style, every mapping's keys sorted
    (by code point, as ``kubectl get -o yaml`` prints a custom resource), so the order keys were
    written in a spec or template never changes a byte."""
    return yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 16)


class _Renderer:
    def __init__(self, repo: Repo, strict: bool) -> None:
        self.repo = repo
        self.jinja = _jinja(repo)
        loaded = _load_templates(repo, self.jinja, [*TEMPLATES.values(), KUSTOMIZATION_TEMPLATE])
        self.templates = {kind: loaded[name] for kind, name in TEMPLATES.items()}
        self.kustomization = loaded[KUSTOMIZATION_TEMPLATE]
        overridden = {kind: _overridden(repo, name) for kind, name in TEMPLATES.items()}
        self.overridden = overridden
        self.kustomization_overridden = _overridden(repo, KUSTOMIZATION_TEMPLATE)
        self.validate_istio = {kind: strict or overridden[kind] for kind in TEMPLATES}
        self.strict = strict
        self.template_place = {kind: Place(f"{repo.rel('templates')}/{name}") if overridden[kind]
                               else Place(f"<built-in>/{name}") for kind, name in TEMPLATES.items()}
        self.errors: list[SpecError] = []
        self.applied: dict[tuple[str, str], tuple[str, str, int] | None] = {}
        self.check_cache: dict[str, list[SpecError]] = {}
        self.rendered = repo.rel("rendered")
        self.statuses: Mapping[str, Mapping[str, Any] | None] = {}
        self.dumped = _DumpCache()
        self.ports: dict[str, dict[str, int | None]] = {}
        self.memo: dict[Any, Any] = {}  # the targets' (targets.AppInput.memo)
        self.shapes = shapes.Shapes(lambda template, context: template.render(context), loader.parse_plain)
        self.checked: Any = None  # a tick's record of specs that passed (cache.CheckedApps)

    @staticmethod
    def _fill(template: jinja2.Template, context: dict[str, Any], untrusted: bool) -> str:
        """A template's text; a repository's own template is bounded in size and time."""
        if not untrusted:
            return template.render(context)
        with timelimit.time_limit(what=f"rendering {template.name}"):
            return templating.render(template, context, max_output=MAX_OBJECT_TEXT)

    # -- checks ---------------------------------------------------------------------------------
    def check(self, app: EffectiveApp) -> bool:
        if self.checked is not None:  # a tick: a spec that passed before as it is now is not checked again
            key = self.checked.key(app.name, app.env, app.data)
            if self.checked.passed(key):
                return True
            errors = self._check_app(app)
            if not errors:
                self.checked.add(key)
        elif self.repo.override(app.name, app.env):
            errors = self._check_app(app)
        else:  # same spec in every environment without overrides: check once
            if app.name not in self.check_cache:
                self.check_cache[app.name] = self._check_app(app)
            errors = self.check_cache[app.name]
        self.errors.extend(errors)
        return not errors

    @staticmethod
    def _check_app(app: EffectiveApp) -> list[SpecError]:
        spec = app.data.get("spec")  # absent in a spec the schema refuses
        rollout = spec.get("rollout") if isinstance(spec, dict) else None
        analysis = rollout.get("analysis") if isinstance(rollout, dict) else None
        listed = analysis.get("metrics") if isinstance(analysis, dict) else None
        if not (isinstance(listed, list) and any(isinstance(m, dict) and "query" in m for m in listed)):
            return checks.check_app(app)  # no custom query: no template to bound
        # a rollout's custom queries are templates: bounded in time while they render
        with timelimit.time_limit(what=f"checking the rollout of app {as_yaml(app.name)}"):
            try:
                return checks.check_app(app)
            except templating.TemplateLimit as e:
                return [SpecError(f"rollout analysis of app {as_yaml(app.name)}: {e}",
                                  place=app.place("spec", "rollout", "analysis"))]

    # -- one app --------------------------------------------------------------------------------
    def render_app(self, app: EffectiveApp, env_spec: dict[str, Any], out: list[RenderedObject]) -> None:
        spec = app.spec
        fqdn = service_fqdn(app)
        labels = {**(app.data["metadata"].get("labels") or {}), **MANAGED_BY,
                  "app.kubernetes.io/name": app.name, "meshgen.io/environment": app.env}
        common = {"name": app.name, "namespace": app.namespace, "labels": labels,
                  "annotations": app.data["metadata"].get("annotations") or {}}
        sources = list(app.sources)
        routes = [dict(r) for r in spec.get("routes") or []]
        l4 = {key: [dict(r) for r in spec.get(key) or []] for key in ("tcp", "tls")}
        rollout = spec.get("rollout")
        if rollout:
            rel = status.status_path(self.repo.rel("status"), app.env, app.name)
            current = self.statuses[rel] if rel in self.statuses else status.load_status(self.repo.root, rel)
            self.applied[(app.env, app.name)] = None
            try:
                found = decision.contradictions(rollout, current, app.name, app.env)
            except ValueError:  # the rollout block's own error, reported by its check
                found = []
            if found:  # a status edited by hand into a state no tick writes: not applied
                self.errors.extend(status.placed(self.repo.root, rel, found))
                return
            if (current and current["stable"] == rollout["stable"] and current["canary"] == rollout["canary"]
                    and current["phase"] != decision.WAITING):  # approved, not started: the spec's split
                weight = current["canaryWeight"]
                self.applied[(app.env, app.name)] = (current["stable"], current["canary"], weight)
                split = {rollout["stable"]: 100 - weight, rollout["canary"]: weight}
                for route in [*routes, *l4["tcp"], *l4["tls"]]:
                    if route["name"] == rollout["route"]:
                        route["to"] = _apply_split(route["to"], split)
                sources.append(rel)

        port = spec["service"].get("port")

        def destination(version: str | None, host: str | None = None, dest_port: int | None = None) -> dict[str, Any]:
            own = host is None or analysis.fqdn(host, app.namespace) == fqdn
            dest: dict[str, Any] = {"host": fqdn if host is None else analysis.fqdn(host, app.namespace)}
            if version:
                dest["subset"] = version
            number = dest_port or (port if own else None)
            if number:
                dest["port"] = {"number": number}
            return dest

        def route_to(to: Any) -> list[dict[str, Any]]:
            if to is not None and checks.is_version_form(to):  # by version name, weights always written
                return [{"destination": destination(v), "weight": w} for v, w in sorted(checks.weights(to).items())]
            out_: list[dict[str, Any]] = []
            for item in checks.destinations(to):
                entry: dict[str, Any] = {"destination": destination(item.get("subset"), item.get("host"), item.get("port"))}
                if "weight" in item:
                    entry["weight"] = item["weight"]
                out_.append(entry)
            return out_

        spec_routes = []
        for i, route in enumerate(routes):
            body: dict[str, Any] = {}
            if "to" in route:  # else a redirect, a direct response or a delegate: Envoy answers itself
                body["route"] = route_to(route["to"])
            elif not any(k in route for k in ("redirect", "directResponse", "delegate")):
                body["route"] = route_to(None)  # an app without versions: its own service
            for key in ("rewrite", "redirect", "directResponse", "delegate", "timeout", "retries", "fault"):
                if key in route:
                    body[key] = route[key]
            if "mirror" in route:
                body["mirror"] = destination(route["mirror"]["version"])
                if "percent" in route["mirror"]:
                    body["mirrorPercentage"] = {"value": float(route["mirror"]["percent"])}
            for key in ("headers", "corsPolicy"):
                if key in route:
                    body[key] = route[key]
            when_place = app.text_place("spec", "routes", i, "when") if "when" in route else None
            spec_routes.append(routing.SpecRoute(route["name"], route.get("when"), body, when_place))
        l4_routes = {key: [{"name": r["name"], **({"match": r["match"]} if r.get("match") else {}),
                            "route": route_to(r["to"])} for r in l4[key]] for key in ("tcp", "tls")}
        target = targets.of_environment(env_spec)
        refused = target.refusals(spec)
        if refused:
            self.errors.extend(SpecError(
                f"app {as_yaml(app.name)}: {what} cannot be rendered for environment {as_yaml(app.env)}, "
                f"whose spec.target is {target.name}", place=app.key_place(*at),
                hint="render this app to an environment with target istio, or write it without that field")
                for at, what in refused)
            return
        given = targets.AppInput(
            name=app.name, namespace=app.namespace, env=app.env,
            meta={"labels": labels, "annotations": common["annotations"]}, spec=spec, env_spec=env_spec,
            host=fqdn, routes=spec_routes, l4=l4_routes, ports=self.ports.get(app.env, {}),
            place=app.place, key_place=app.key_place, memo=self.memo)
        try:
            made = target.objects(given)
        except SpecErrors as e:
            self.errors.extend(e.errors)
            return
        except SpecError as e:
            self.errors.append(e)
            return
        base = f"{self.rendered}/{app.env}/{app.namespace}/{app.name}"
        for m in made:
            if m.context is not None:  # the renderer's template for the kind, with the target's values
                self.emit(out, app, m.kind, f"{base}/{m.file}", m.place, sources, {**common, **m.context})
                continue
            obj = m.obj
            problems = []
            if obj["apiVersion"] == ISTIO_API and self.validate_istio.get(m.kind):  # --strict: Istio's own schema
                problems = istio_schema_problems(obj)
            elif self.strict and obj["apiVersion"].startswith("gateway.networking.k8s.io/"):  # --strict: the CRD's
                problems = gateway_api_schema_problems(obj)
            if problems:
                self.errors.extend(SpecError(f"rendered {m.kind} of app {as_yaml(app.name)} in "
                                             f"{as_yaml(app.env)}: {p}", place=m.problem_place or m.place)
                                   for p in problems)
                continue
            out.append(RenderedObject(app.env, app.name, obj["metadata"]["namespace"], m.kind, obj,
                                      f"{base}/{m.file}", m.place, sources))

    def check_environment(self, env: str, env_spec: Mapping[str, Any]) -> list[EffectiveApp]:
        """Check every app of environment ``env`` on its own and the apps together (rollout
        groups, hosts claimed twice, destinations to hosts that are neither apps nor declared
        external); the errors go to :attr:`errors`. Returns the apps that passed their own checks."""
        valid = [a for a in (self.repo.effective_app(name, env) for name in self.repo.apps) if self.check(a)]
        self.errors.extend(e for e in groups.check_environment(valid, env)
                           if e.format() not in {known.format() for known in self.errors})
        service_hosts = {a.name: service_fqdn(a) for a in valid}
        self.ports[env] = {service_fqdn(a): (a.spec.get("service") or {}).get("port") for a in valid}
        self.errors.extend(checks.check_hosts(valid, service_hosts))
        self.errors.extend(checks.check_destinations(valid, service_hosts, env_spec.get("externalHosts") or []))
        return valid

    def emit(self, out: list[RenderedObject], app: EffectiveApp, kind: str, path: str, place: Place,
             sources: list[str], context: dict[str, Any]) -> None:
        try:
            obj = self._object(kind, context)
        except templating.TemplateFailure as e:
            place = self.template_place[kind]
            self.errors.append(SpecError(f"template for {kind} failed for app {as_yaml(app.name)} in {as_yaml(app.env)}: "
                                         f"{e.message}", place=Place(place.path, e.lineno, 1 if e.lineno else 0)))
            return
        except (jinja2.TemplateError, yaml.YAMLError, TypeError) as e:
            self.errors.append(SpecError(f"template for {kind} failed for app {as_yaml(app.name)} in {as_yaml(app.env)}: {e}",
                                         place=self.template_place[kind]))
            return
        problems = self.check_object(obj, kind, app)
        if problems:
            self.errors.extend(SpecError(f"rendered {kind} of app {as_yaml(app.name)} in {as_yaml(app.env)}: {p}",
                                         place=self.template_place[kind]) for p in problems)
            return
        out.append(RenderedObject(app.env, app.name, app.namespace, kind, obj, path, place, sources))

    def _object(self, kind: str, context: dict[str, Any]) -> Any:
        """What the template of ``kind`` yields for ``context``, parsed: a built-in template's
        object is built once its context's shape has been seen (:mod:`generator.render.shapes`),
        anything else is filled and parsed back."""
        if not self.overridden[kind]:
            try:
                return self.shapes.build(self.templates[kind], context)
            except shapes.Unshaped:
                pass
        return loader.parse_plain(self._fill(self.templates[kind], context, self.overridden[kind]))

    def check_object(self, obj: Any, kind: str, app: EffectiveApp) -> list[str]:
        if not isinstance(obj, dict):
            return ["not a mapping"]
        problems = []
        if obj.get("apiVersion") != ISTIO_API or obj.get("kind") != kind:
            problems.append(f"expected apiVersion {ISTIO_API} and kind {kind}")
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or meta.get("namespace") != app.namespace or not meta.get("name"):
            problems.append(f"metadata must have a name and namespace {as_yaml(app.namespace)}")
        elif (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") != "meshgen":
            problems.append("label app.kubernetes.io/managed-by: meshgen is missing")
        if not isinstance(obj.get("spec"), dict):
            problems.append("spec must be a mapping")
        if not problems and self.validate_istio[kind]:
            problems.extend(istio_schema_problems(obj))
        return problems

    # -- files ----------------------------------------------------------------------------------
    def files_of(self, env: str, objects: list[RenderedObject], files: dict[str, bytes]) -> None:
        prefix = f"{self.rendered}/{env}/"
        for o in objects:
            header = f"{HEADER} from {', '.join(o.sources)}; do not edit.\n"
            files[o.path] = (header + self.dumped.dump(o.obj, env)).encode()
        resources_ = sorted(o.path[len(prefix):] for o in objects)
        env_file = f"{self.repo.rel('environments')}/{env}.yaml"
        try:
            text = self._fill(self.kustomization, {"resources": resources_, "env": env}, self.kustomization_overridden)
            obj = yaml.load(text, Loader=yaml.CSafeLoader)
        except (templating.TemplateFailure, jinja2.TemplateError, yaml.YAMLError) as e:
            where = f"{self.repo.rel('templates')}/{KUSTOMIZATION_TEMPLATE}"
            line = getattr(e, "lineno", 0) or 0
            self.errors.append(SpecError(f"template for kustomization.yaml failed in {as_yaml(env)}: "
                                         f"{getattr(e, 'message', None) or e}", place=Place(where, line, 1 if line else 0)))
            return
        header = f"{HEADER} from {self.repo.rel('apps')}/ and {env_file}; do not edit.\n"
        files[f"{prefix}kustomization.yaml"] = (header + dump(obj)).encode()


def _apply_split(to: Any, split: dict[str, int]) -> Any:
    """A route's ``to`` with a rollout's ``{stable: w, canary: w}`` applied: the version form
    becomes the split (versions at 0 % left out, as before); in the destination-list form the
    stable and canary subsets get the weights (one at 0 % left out)."""
    if checks.is_version_form(to):
        return {v: w for v, w in split.items() if w}
    items = [dict(item, weight=split[item["subset"]]) for item in checks.destinations(to)
             if item.get("subset") in split and split[item["subset"]]]
    return items


class _DumpCache:
    """:func:`dump` of objects that differ between environments only in their
    ``meshgen.io/environment`` label, done once: the same app renders to the same object in
    every environment its overrides leave alone, and dumping is most of a render's time. The
    first of them is dumped once per shape (:class:`generator.render.shapes.Dumps`): apps
    written alike render to objects that differ only in scalars YAML writes plain; one
    :class:`~generator.render.shapes.Dumps` refuses (a tuple, say) is dumped as it is.

    Objects are alike when their ``marshal`` bytes (version 2, without references) are, the
    label's value left blank: ``marshal`` tells ``1`` from ``"1"``, ``1.0`` and ``True``, and
    equal bytes mean equal plain values in the same key order (order does not change the dump,
    which sorts keys; it only makes a miss); an object ``marshal`` cannot write is dumped afresh. A hit is the
    earlier text with that label's one line changed, which is the exact text :func:`dump`
    writes, since an environment name (a DNS label) that YAML writes plain is written plain in
    that line and nowhere else changes; names YAML would quote (``"true"``, ``"1"``) and texts
    where the line is not found exactly once are dumped afresh.
    """

    LABEL = "meshgen.io/environment"

    def __init__(self) -> None:
        self._texts: dict[bytes, tuple[str, str]] = {}
        self._plain: dict[str, bool] = {}
        self._shapes = shapes.Dumps(dump)

    def _is_plain(self, env: str) -> bool:
        if env not in self._plain:
            self._plain[env] = dump(env) in (f"{env}\n", f"{env}\n...\n")
        return self._plain[env]

    def dump(self, obj: Any, env: str) -> str:
        labels = (obj.get("metadata") or {}).get("labels") if isinstance(obj, dict) else None
        if not isinstance(labels, dict) or labels.get(self.LABEL) != env or not self._is_plain(env):
            return self._shapes.text(obj)
        labels[self.LABEL] = None  # the key: the object's bytes with the label left blank (its place kept)
        try:
            key = marshal.dumps(obj, 2)  # version 2: no references, so the bytes are the values'
        except (ValueError, RecursionError):  # a type marshal does not write (a str subclass...), too deep
            return self._shapes.text(obj)
        finally:
            labels[self.LABEL] = env
        hit = self._texts.get(key)
        if hit is not None:
            old_env, text = hit
            line = f" {self.LABEL}: {old_env}\n"
            if text.count(line) == 1:
                return text.replace(line, f" {self.LABEL}: {env}\n")
        text = self._shapes.text(obj)
        self._texts[key] = (env, text)
        return text



def _str_keys(obj: Any) -> bool:
    """Whether every mapping key in ``obj`` is a string."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if not isinstance(k, str):
                    return False
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return True


@functools.cache
def _istio_validator(kind: str) -> Any:
    return schema.validator(f"istio/{kind.lower()}.json")


def istio_schema_problems(obj: dict[str, Any]) -> list[str]:
    """Problems of ``obj`` against Istio's own CRD schema (networking.istio.io/v1, unknown fields refused)
    and its CEL rules (:mod:`generator.render.cel`)."""
    return _crd_problems(_istio_validator(obj["kind"]), obj)


def _crd_problems(validator: Any, obj: dict[str, Any]) -> list[str]:
    """``path: message`` of each schema error of ``obj``; when there is none, its CRD's
    ``x-kubernetes-validations`` (CEL) problems, as the API server checks them."""
    problems = []
    for error in validator.iter_errors(obj):
        where = ".".join(str(p) for p in error.absolute_path)
        problems.append(f"{where}: {schema.yaml_message(error)}" if where else schema.yaml_message(error))
    if not problems:
        problems.extend(cel.problems(obj, validator.schema))
    return problems


@functools.cache
def _gateway_api_validator(kind: str) -> Any:
    return schema.validator(f"gateway-api/{kind.lower()}.json")


def gateway_api_schema_problems(obj: dict[str, Any]) -> list[str]:
    """Problems of a Gateway API object (``gateway.networking.k8s.io``: Gateway, HTTPRoute,
    GRPCRoute, TCPRoute, TLSRoute, ReferenceGrant) against its vendored CRD's schema (``vendor/gateway-api/``, standard
    channel) and, when that holds, its CEL rules, as ``path: message``.

    Raises:
        FileNotFoundError: a kind without a vendored schema.
    """
    return _crd_problems(_gateway_api_validator(obj["kind"]), obj)


def render_repo(root: Path, envs: list[str] | None = None, *, strict: bool = False,
                progress: Callable[[int, int], None] | None = None, cache: bool = True) -> Rendering:
    """Render every (or the named) environment of the config repository at ``root``.

    Args:
        root: repository root.
        envs: environment names; ``None`` or empty means all.
        strict: also validate every object against its CRD: Istio's (always done for objects
            whose template a repo overrides), and the vendored Gateway API CRDs' (``vendor/gateway-api/``,
            schema and CEL rules) for the gateway-api target's objects.
        progress: called as ``progress(done, total)`` after each app.
        cache: reuse the previous rendering when no input changed (see :mod:`generator.render.cache`).

    Returns:
        The :class:`Rendering` (nothing is written); from the cache, a
        :class:`~generator.render.cache.CachedRendering` with the same attributes.

    Raises:
        SpecErrors: every error of every app and environment, with places.
        UsageError: an environment named in ``envs`` does not exist.
    """
    from generator.render import cache as cache_mod

    root = Path(root)
    store = cache_mod.RenderCache.for_repo(root, envs, strict) if cache else None
    if store is not None:
        hit = store.get()
        if hit is not None:
            return hit
    with timelimit.cyclic_gc_paused():  # many small acyclic objects: collections would be for nothing
        rendering = _render(root, envs, strict, progress)
    if store is not None:
        store.put(rendering)
    return rendering


class AppsRendering:
    """The render of some apps (what a rollout tick changed), whose environments can be
    checked ahead of it: a tick checks them while Prometheus answers its queries.

    Every app of an environment rendered is checked, with the cross-app checks, as a whole
    render checks them (a tick never commits beside a spec that does not render); only the
    named apps' templates are filled. Use one instance per repository load and render.

    Args:
        repo: the loaded repository.
        strict: as :func:`render_repo`'s.
    """

    def __init__(self, repo: Repo, strict: bool = False) -> None:
        from generator.render import cache as cache_mod

        self.repo = repo
        self._renderer = _Renderer(repo, strict)
        self._renderer.checked = cache_mod.CheckedApps.for_repo(repo.root)
        self._checked: dict[str, tuple[list[EffectiveApp], list[SpecError]]] = {}

    def check(self, env: str) -> None:
        """Check every app of environment ``env`` now (once; an unknown name is left to
        :meth:`render`). Errors are kept for :meth:`render` of that environment."""
        if env in self._checked or env not in self.repo.environments:
            return
        renderer = self._renderer
        before = len(renderer.errors)
        valid = renderer.check_environment(env, self.repo.environments[env].data.get("spec") or {})
        self._checked[env] = (valid, renderer.errors[before:])
        del renderer.errors[before:]

    def render(self, pairs: Collection[tuple[str, str]],
               statuses: Mapping[str, Mapping[str, Any] | None]) -> Rendering:
        """The object files of the named ``(env, app)`` pairs alone (what a rollout tick changed):
        no kustomization or GitOps manifests, whose bytes a changed weight never changes; never
        cached. ``statuses``: ``{status file path: status}`` to apply instead of reading those
        files (the statuses a tick is about to commit).

        Raises:
            SpecErrors: every error of the environments rendered, with places.
            UsageError: an environment named in ``pairs`` does not exist.
        """
        repo, renderer = self.repo, self._renderer
        names = [e for e in repo.environments if any(env == e for env, _ in pairs)]
        unknown = sorted({e for e, _ in pairs} - set(repo.environments))
        if unknown:
            raise UsageError(f"unknown environment {', '.join(unknown)} (known: {', '.join(repo.environments)})")
        renderer.statuses = statuses
        renderer.errors.extend(promotion.check_pipelines(repo))
        wanted = set(pairs)
        objects: list[RenderedObject] = []
        files: dict[str, bytes] = {}
        for env in names:
            env_spec = repo.environments[env].data.get("spec") or {}
            self.check(env)
            valid, errors = self._checked[env]
            renderer.errors.extend(errors)
            env_objects: list[RenderedObject] = []
            for app in valid:
                if (env, app.name) in wanted:
                    renderer.render_app(app, env_spec, env_objects)
            for o in env_objects:
                files[o.path] = (f"{HEADER} from {', '.join(o.sources)}; do not edit.\n"
                                 + renderer.dumped.dump(o.obj, env)).encode()  # as a whole render dumps them
            objects.extend(env_objects)
        renderer.checked.save()
        SpecErrors.collect(list({e.format(): e for e in renderer.errors}.values()))
        rendering = Rendering(files, objects, names, list(repo.environments), repo.rel("rendered"), repo.root,
                              renderer.applied)
        rendering.__dict__["repo"] = repo
        return rendering


def _render(root: Path, envs: list[str] | None, strict: bool,
            progress: Callable[[int, int], None] | None) -> Rendering:
    repo = load_repo(root)
    names = list(repo.environments)
    if envs:
        unknown = [e for e in envs if e not in repo.environments]
        if unknown:
            raise UsageError(f"unknown environment {', '.join(unknown)} (known: {', '.join(names)})")
        names = [e for e in names if e in envs]
    renderer = _Renderer(repo, strict)
    renderer.errors.extend(promotion.check_pipelines(repo))
    objects: list[RenderedObject] = []
    files: dict[str, bytes] = {}
    total, done = len(names) * len(repo.apps), 0
    for env in names:
        env_spec = repo.environments[env].data.get("spec") or {}
        valid = renderer.check_environment(env, env_spec)
        env_objects: list[RenderedObject] = []
        for app in valid:
            renderer.render_app(app, env_spec, env_objects)
            done += 1
            if progress:
                progress(done, total)
        renderer.files_of(env, env_objects, files)
        objects.extend(env_objects)
    unique = list({e.format(): e for e in renderer.errors}.values())
    SpecErrors.collect(unique)
    files.update(manifests.manifests(repo.settings.raw.get("gitops"),
                                  {e: doc.data for e, doc in repo.environments.items()},
                                  rendered_dir=repo.rel("rendered")))
    rendering = Rendering(files, objects, names, list(repo.environments), repo.rel("rendered"), repo.root,
                          renderer.applied)
    rendering.__dict__["repo"] = repo  # already loaded: seed the cached property
    return rendering
