"""The config repository: settings, App and Environment specs, and the merge between them.

Layout (DESIGN §1): ``meshgen.yaml`` (optional), ``apps/<app>.yaml``, ``environments/<env>.yaml``,
``templates/``, ``rendered/<env>/``, ``status/<env>/<app>.yaml``; the directories can be moved
by ``meshgen.yaml`` ``paths``.

An environment's ``spec.apps.<app>`` override is deep-merged into the App spec before anything
else looks at it: mappings merge key by key (except a route's ``to`` and label maps,
which are replaced whole), lists whose items are mappings with a ``name``
(routes) merge item by item by name (new names are appended), a ``null`` deletes the key,
anything else replaces. Route tests (``spec.tests``) add up: an environment's tests are
appended to the app's, and one named like an app's test replaces it. The merged spec keeps, for every value, the place it came from, so an
error in an overridden value points into the environment file.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from generator.errors import Place, SpecError, SpecErrors, as_yaml
from generator.spec import paths, schema
from generator.spec.loader import Document, KeyPath, load_document

SETTINGS_FILE = "meshgen.yaml"
DEFAULT_PATHS = {"apps": "apps", "environments": "environments", "templates": "templates",
                 "rendered": "rendered", "status": "status"}


@dataclass
class Settings:
    """``meshgen.yaml``: directory names (repository-relative), the raw mapping for other
    sections, and the loaded document (for the places of errors; ``None`` without the file)."""

    paths: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PATHS))
    raw: dict[str, Any] = field(default_factory=dict)
    doc: Document | None = None


class EffectiveApp:
    """An App spec as one environment sees it: overrides merged, each value's place known.

    Attributes:
        name: the app name (file stem).
        env: the environment name.
        data: the merged App document (plain values). Read-only: subtrees no override touches
            are shared with the loaded document.
        sources: repository-relative paths of the files the spec came from.
    """

    def __init__(self, name: str, env: str, data: dict[str, Any],
                 table: dict[KeyPath, tuple[Document, KeyPath]], sources: list[str]) -> None:
        self.name = name
        self.env = env
        self.data = data
        self._table = table
        self.sources = sources

    @property
    def spec(self) -> dict[str, Any]:
        return self.data["spec"]

    @property
    def namespace(self) -> str:
        return self.data["metadata"]["namespace"]

    def _source(self, keys: KeyPath) -> tuple[Document, KeyPath]:
        for n in range(len(keys), -1, -1):
            hit = self._table.get(keys[:n])
            if hit is not None:
                doc, at = hit
                return doc, (*at, *keys[n:])
        raise KeyError(keys)  # the table always holds ()

    def place(self, *keys: Any) -> Place:
        """Place of the merged value at ``keys`` in the file it came from."""
        doc, at = self._source(tuple(keys))
        return doc.place(*at)

    def key_place(self, *keys: Any) -> Place:
        """Place of the mapping key at ``keys`` in the file it came from."""
        doc, at = self._source(tuple(keys))
        return doc.key_place(*at)

    def text_place(self, *keys: Any) -> Place:
        """Place of the first character of the string at ``keys`` (inside its quotes)."""
        doc, at = self._source(tuple(keys))
        return doc.text_place(*at)


class Repo:
    """A loaded config repository.

    Attributes:
        root: repository root directory.
        settings: :class:`Settings` from ``meshgen.yaml`` (defaults when absent).
        apps: ``{name: Document}`` of ``apps/*.yaml``, sorted by name.
        environments: ``{name: Document}`` of ``environments/*.yaml``, sorted by name.
    """

    def __init__(self, root: Path, settings: Settings, apps: dict[str, Document],
                 environments: dict[str, Document]) -> None:
        self.root = root
        self.settings = settings
        self.apps = apps
        self.environments = environments

    def dir(self, name: str) -> Path:
        """Absolute path of a configured directory (``apps``, ``rendered``, ...)."""
        return self.root / self.settings.paths[name]

    def rel(self, name: str) -> str:
        """Repository-relative POSIX path of a configured directory."""
        return Path(self.settings.paths[name]).as_posix()

    def override(self, app: str, env: str) -> Any:
        return (((self.environments[env].data.get("spec") or {}).get("apps") or {}).get(app))

    def effective_app(self, app: str, env: str) -> EffectiveApp:
        """The App spec ``app`` with environment ``env``'s overrides merged in."""
        base = self.apps[app]
        table: dict[KeyPath, tuple[Document, KeyPath]] = {(): (base, ())}
        data = base.data  # read-only: a merge builds new mappings along the merged paths only
        sources = [base.path]
        over = self.override(app, env)
        if isinstance(over, dict) and over:
            env_doc = self.environments[env]
            data = _merge(data, over, (), ("spec", "apps", app), env_doc, table)
            sources.append(env_doc.path)
        return EffectiveApp(app, env, data, table, sources)


#: Mappings that an override replaces whole instead of merging key by key: a weight split or a
#: label selector means exactly what it lists.
ATOMIC_KEYS = frozenset({"to", "labels", "selector"})
#: Lists an environment's override adds to (named items replace the item of that name).
ADDITIVE_LISTS = frozenset({("spec", "tests")})


def _is_named_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(i, dict) and "name" in i for i in value)


def _merge(base: Any, over: Any, at: KeyPath, over_at: KeyPath, over_doc: Document,
           table: dict[KeyPath, tuple[Document, KeyPath]]) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if value is None:
                out.pop(key, None)
                table[(*at, key)] = (over_doc, (*over_at, key))
            elif key in out and key not in ATOMIC_KEYS:
                out[key] = _merge(out[key], value, (*at, key), (*over_at, key), over_doc, table)
            else:
                out[key] = copy.deepcopy(value)
                table[(*at, key)] = (over_doc, (*over_at, key))
        return out
    additive = at in ADDITIVE_LISTS and isinstance(base, list) and isinstance(over, list)
    if additive or (_is_named_list(base) and _is_named_list(over) and over):
        out_list = list(base)
        index = {item["name"]: i for i, item in enumerate(out_list) if isinstance(item, dict) and "name" in item}
        for j, item in enumerate(over):
            i = index.get(item["name"]) if isinstance(item, dict) and "name" in item else None
            if i is None:
                out_list.append(copy.deepcopy(item))
                table[(*at, len(out_list) - 1)] = (over_doc, (*over_at, j))
            else:
                out_list[i] = _merge(out_list[i], item, (*at, i), (*over_at, j), over_doc, table)
        return out_list
    table[at] = (over_doc, over_at)
    return copy.deepcopy(over)


def _load_dir(root: Path, rel: str, errors: list[SpecError]) -> dict[str, Document]:
    docs: dict[str, Document] = {}
    directory = root / rel
    problem = paths.input_problem(root, directory, Path(rel).as_posix(), directory=True)
    if problem is not None:
        errors.append(problem)
        return docs
    if not directory.is_dir():
        return docs
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))
    for path in files:
        shown = (Path(rel) / path.name).as_posix()
        problem = paths.input_problem(root, path, shown)
        if problem is not None:
            errors.append(problem)
            continue
        try:
            doc = load_document(path, shown)
        except SpecError as e:
            errors.append(e)
            continue
        except OSError as e:
            errors.append(SpecError(f"cannot be read: {e.strerror}", place=Place(shown)))
            continue
        if path.stem in docs:
            errors.append(SpecError(f"two files define {as_yaml(path.stem)}", place=Place(shown, 1, 1),
                                    hint="keep one of .yaml and .yml"))
            continue
        docs[path.stem] = doc
    return docs


def _check_name(doc: Document, stem: str, errors: list[SpecError]) -> None:
    name = (doc.data.get("metadata") or {}).get("name") if isinstance(doc.data.get("metadata"), dict) else None
    if isinstance(name, str) and name != stem:
        if schema.is_dns1123_label(name):
            hint = f"rename the file to {name}.yaml or set metadata.name: {stem}"
        elif schema.is_dns1123_label(stem):  # never suggest a file name that is not a valid name
            hint = f"set metadata.name: {stem}"
        else:
            valid = schema.dns1123_label(name) or schema.dns1123_label(stem) or "my-app"
            hint = f"use a DNS-1123 label such as {as_yaml(valid)} as metadata.name and name the file {valid}.yaml"
        errors.append(SpecError(f"metadata.name {as_yaml(name)} does not match the file name {as_yaml(stem)}",
                                place=doc.place("metadata", "name"), hint=hint))


def load_settings(root: Path) -> Settings:
    """Read ``meshgen.yaml`` (optional). Raises :class:`SpecErrors` when it is invalid."""
    path = root / SETTINGS_FILE
    problem = paths.input_problem(root, path, SETTINGS_FILE)
    if problem is not None:
        raise SpecErrors([problem])
    if not path.is_file():
        return Settings()
    doc = load_document(path, SETTINGS_FILE)
    SpecErrors.collect(schema.validate(doc.data, "settings.schema.json", doc.place, doc.key_place))
    configured = dict(DEFAULT_PATHS)
    configured.update(doc.data.get("paths") or {})
    SpecErrors.collect(paths.configured_problems(root, configured))
    return Settings(paths=configured, raw=doc.data, doc=doc)


def load_repo(root: Path) -> Repo:
    """Load and schema-check every spec of the repository at ``root``.

    Checks that need the merged App spec of an environment (schema validation of the merged
    spec, semantic checks) happen in :mod:`generator.render.checks`; here each file is checked on its
    own: YAML well-formedness, the Environment schema, ``kind``/``apiVersion`` of Apps, and
    that ``metadata.name`` equals the file stem.

    Raises:
        SpecErrors: every problem found, with its place.
    """
    root = Path(root)
    errors: list[SpecError] = []
    try:
        settings = load_settings(root)
    except SpecError as e:
        raise SpecErrors([e]) from e
    apps = _load_dir(root, settings.paths["apps"], errors)
    environments = _load_dir(root, settings.paths["environments"], errors)
    for stem, doc in environments.items():
        errors.extend(schema.validate(doc.data, "environment.schema.json", doc.place, doc.key_place))
        _check_name(doc, stem, errors)
        spec = doc.data.get("spec")
        overrides = spec.get("apps") if isinstance(spec, dict) else None
        for app in overrides if isinstance(overrides, dict) else {}:  # another shape: a schema error above
            if app not in apps:
                close = difflib.get_close_matches(str(app), sorted(apps), n=1)
                errors.append(SpecError(f"override for unknown app {as_yaml(app)}",
                                        place=doc.key_place("spec", "apps", app),
                                        hint=f"did you mean {as_yaml(close[0])}?" if close else
                                        f"add {settings.paths['apps']}/{app}.yaml or remove the override"))
    for stem, doc in apps.items():
        for key, expected in (("apiVersion", "meshgen.io/v1alpha1"), ("kind", "App")):
            if doc.data.get(key) != expected:
                errors.append(SpecError(f"{key} must be {as_yaml(expected)}, found {as_yaml(doc.data.get(key))}",
                                        place=doc.place(key)))
        _check_name(doc, stem, errors)
    if not environments and not errors:
        errors.append(SpecError("no environments defined",
                                place=Place(settings.paths["environments"] + "/"),
                                hint="add environments/<env>.yaml, or run `meshgen init DIR` for an example"))
    SpecErrors.collect(errors)
    return Repo(root, settings, apps, environments)
