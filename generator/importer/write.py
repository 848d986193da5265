"""``meshgen import``'s IO: read the input files, convert, write specs into a config repository.

An app's spec goes to ``apps/<app>.yaml`` (never over an existing file without ``force``).
With ``env``, an app whose spec exists already gets what differs as an override in
``environments/<env>.yaml`` ``spec.apps.<app>`` (that file is written back whole, its
comments not kept; an existing override of the app is replaced only with ``force``). Every
file is written atomically (:func:`generator.render.output.atomic_write`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from generator.errors import Place, SpecError, UsageError
from generator.importer import convert as conv
from generator.importer.read import IstioObject, read
from generator.render.output import atomic_write, yaml_files
from generator.spec import loader

ENV_SCHEMA_LINE = "# yaml-language-server: $schema=../schemas/environment.schema.json"


@dataclass
class Line:
    """One line of the report: an object imported (``into``) or an ``error``."""

    obj: IstioObject | None
    into: str | None = None
    error: SpecError | None = None

    def format(self) -> str:
        if self.error is not None:
            return self.error.format()
        assert self.obj is not None
        return f"imported {self.obj.ref} into {self.into}"


@dataclass
class Report:
    """What an import did: one :class:`Line` per object (and per unreadable input), the files written."""

    lines: list[Line] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(line.error is None for line in self.lines)


def input_files(paths: list[Path]) -> list[Path]:
    """The YAML files named (:func:`generator.render.output.yaml_files`; an empty directory is
    a usage error, exit 2)."""
    return yaml_files(paths, empty_dir=False)


def _dump(header: str, doc: dict[str, Any]) -> bytes:
    text = yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False, allow_unicode=True,
                     width=1_000_000)  # a condition stays on one line
    return (header + "\n" + text).encode()


def _existing_apps(root: Path) -> dict[str, dict[str, Any]]:
    apps: dict[str, dict[str, Any]] = {}
    for f in sorted((root / "apps").glob("*.yaml")):
        try:
            data = loader.load_document(f, f"apps/{f.name}").data
        except SpecError:
            continue
        apps[f.stem] = data
    return apps


def import_paths(root: Path, paths: list[Path], *, env: str | None = None, force: bool = False,
                 namespace: str = "default") -> Report:
    """Import the Istio objects of ``paths`` into the config repository at ``root``.

    Args:
        root: the config repository (it has ``apps/``).
        paths: files or directories of Istio YAML; ``-`` reads standard input.
        env: an environment: an app that has a spec already gets the difference as this
            environment's override rather than a new spec.
        force: overwrite an existing spec (or override of the app in ``env``).
        namespace: for objects that name none (as ``kubectl apply`` would use).

    Returns:
        The :class:`Report`; its lines are in input order.

    Raises:
        UsageError: no config repository at ``root``, or a path that does not exist.
    """
    if not (root / "apps").is_dir():
        raise UsageError(f"{root}: not a config repository (no apps/ directory)",)
    if env is not None and not conv._LABEL.match(env):
        raise UsageError(f"--env {env!r}: an environment name is a DNS-1123 label")
    report = Report()
    objects: list[IstioObject] = []
    for f in input_files(paths):
        shown = "<stdin>" if str(f) == "-" else str(f)
        try:
            text = sys.stdin.read() if str(f) == "-" else f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            report.lines.append(Line(None, error=SpecError(f"cannot read: {e}", place=Place(shown, 1, 1))))
            continue
        found, errors = read(text, shown, namespace)
        objects.extend(found)
        report.lines.extend(Line(None, error=e) for e in errors)
    existing = _existing_apps(root)
    result = conv.convert(objects, existing={n: _identity(d) for n, d in existing.items()})
    into: dict[str, str] = {}
    refused: dict[str, SpecError] = {}
    env_doc: dict[str, Any] | None = None
    env_path = root / "environments" / f"{env}.yaml" if env else None
    for name, doc in result.apps.items():
        target = f"apps/{name}.yaml"
        path = root / target
        if name in existing and env is not None:
            try:
                over = conv.override(existing[name], doc)
            except conv.Cannot as e:
                refused[name] = SpecError(f"app {name!r}: {e.message}", hint=e.hint)
                continue
            if over is None:
                into[name] = f"{target} (the same in {env})"
                continue
            if env_doc is None:
                env_doc = _load_env(env_path, env)
            apps = env_doc.setdefault("spec", {}).setdefault("apps", {}) or {}
            env_doc["spec"]["apps"] = apps
            if name in apps and not force:
                refused[name] = SpecError(f"environments/{env}.yaml has an override of app {name!r} already",
                                          hint="pass --force to replace it")
                continue
            apps[name] = over
            into[name] = f"environments/{env}.yaml (spec.apps.{name})"
            continue
        if path.exists() and not force:
            refused[name] = SpecError(f"{target} exists; an existing spec is never overwritten",
                                      hint="pass --force to overwrite it, or --env ENV to import the "
                                           "difference as that environment's override")
            continue
        atomic_write(path, _dump(conv.SCHEMA_LINE, doc))
        report.written.append(target)
        into[name] = target
    if env_doc is not None and env_path is not None:
        atomic_write(env_path, _dump(ENV_SCHEMA_LINE, env_doc))
        report.written.append(f"environments/{env}.yaml")
    report.notes = _outside(existing, {n: d for n, d in result.apps.items() if n in into})
    for outcome in result.outcomes:
        if outcome.error is not None:
            report.lines.append(Line(outcome.obj, error=outcome.error))
        elif outcome.app in refused:
            e = refused[outcome.app]
            report.lines.append(Line(outcome.obj, error=SpecError(
                e.message, place=outcome.obj.doc.place(*outcome.obj.at, "metadata", "name"), hint=e.hint)))
        else:
            report.lines.append(Line(outcome.obj, into=into[outcome.app or ""]))
    return report


def _identity(doc: dict[str, Any]) -> tuple[str, str]:
    """``(namespace, service FQDN)`` of an existing App document."""
    meta = doc.get("metadata") or {}
    ns = str(meta.get("namespace", ""))
    host = str(((doc.get("spec") or {}).get("service") or {}).get("host", ""))
    return ns, conv.fqdn(host, ns)


def _load_env(path: Path | None, env: str | None) -> dict[str, Any]:
    assert path is not None and env is not None
    if path.exists():
        return loader.load_document(path, f"environments/{env}.yaml").data
    return {"apiVersion": conv.API_VERSION, "kind": "Environment", "metadata": {"name": env}, "spec": {}}


def _outside(existing: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    """Notes on the hosts and gateways the imported specs name that no app of the repository
    serves or renders: an environment must declare them (``spec.externalHosts``,
    ``spec.externalGateways``) before ``meshgen render`` accepts the specs."""
    apps = {**existing, **new}
    hosts: set[str] = set()
    gateways: set[str] = set()
    for name, doc in apps.items():
        ns = str((doc.get("metadata") or {}).get("namespace", ""))
        spec = doc.get("spec") or {}
        host = str((spec.get("service") or {}).get("host", ""))
        hosts.add(conv.fqdn(host, ns))
        hosts.update(conv.fqdn(str(h), ns) for h in (spec.get("serviceEntry") or {}).get("hosts") or [])
        if spec.get("expose") is not None:
            gateways.add(f"{ns}/{(spec.get('expose') or {}).get('name') or name + '-gateway'}")
    notes = []
    for name, doc in sorted(new.items()):
        ns = doc["metadata"]["namespace"]
        spec = doc["spec"]
        wanted: set[str] = set()
        for section in ("routes", "tcp", "tls"):
            for route in spec.get(section) or []:
                to = route.get("to")
                for d in (to if isinstance(to, list) else [to] if isinstance(to, dict) else []):
                    if isinstance(d, dict) and isinstance(d.get("host"), str):
                        wanted.add(conv.fqdn(d["host"], ns))
        for host in sorted(h for h in wanted if h not in hosts):
            notes.append(f"apps/{name}.yaml routes to {host}, which no app of the repository serves: list it in "
                         "spec.externalHosts of the environments (environments/*.yaml)")
        for ref in spec.get("gateways") or []:
            full = ref if ref == "mesh" or "/" in ref else f"{ns}/{ref}"
            if full != "mesh" and full not in gateways:
                notes.append(f"apps/{name}.yaml binds the Gateway {full}, which no app of the repository renders: "
                             "list it in spec.externalGateways of the environments (environments/*.yaml)")
    return notes
