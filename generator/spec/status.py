"""Rollout status files: ``status/<env>/<app>.yaml`` (DESIGN §6), written only by the rollout bot.

The schema is ``schemas/rolloutstatus.schema.json``. The renderer reads a status to apply the
canary weight to the rollout's route; the bot reads and writes it. Writes are atomic
(:func:`generator.render.output.atomic_write`) and byte-deterministic.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from generator.errors import Place, SpecError, SpecErrors, as_yaml
from generator.spec import paths, schema
from generator.spec.loader import load_document

API_VERSION = "meshgen.io/v1alpha1"


def status_path(status_dir: str, env: str, app: str) -> str:
    """Repository-relative path of one status file."""
    return f"{status_dir}/{env}/{app}.yaml"


def load_status(root: Path, rel: str) -> dict[str, Any] | None:
    """The ``status`` mapping of the status file at ``root/rel``, or ``None`` when there is none.

    Raises:
        SpecErrors: the file is not valid YAML or not a valid RolloutStatus.
    """
    path = root / rel
    problem = paths.input_problem(root, path, rel)
    if problem is None:
        for parent in reversed(Path(rel).parents[:-1]):  # status/, status/<env>/: no links
            if (root / parent).is_symlink():
                problem = SpecError(f"is a symbolic link; meshgen never reads or writes status through a link",
                                    place=Place(parent.as_posix()), hint="make it a real directory")
                break
    if problem is not None:
        raise SpecErrors([problem])
    if not path.is_file():
        return None
    try:
        doc = load_document(path, rel)
    except SpecError as e:
        raise SpecErrors([e]) from e
    SpecErrors.collect(schema.validate(doc.data, "rolloutstatus.schema.json", doc.place, doc.key_place))
    SpecErrors.collect(_check_times(doc) + _check_names(doc, rel))
    return doc.data["status"]


def _check_names(doc: Any, rel: str) -> list[SpecError]:
    """``metadata.name`` and ``metadata.environment`` that are not the file's own
    (``status/<environment>/<name>.yaml``): a status copied or moved by hand, which the bot
    would take for another rollout's."""
    errors = []
    path = Path(rel)
    for key, expected, part in (("environment", path.parent.name, "folder"), ("name", path.stem, "file name")):
        value = doc.data["metadata"][key]
        if value != expected:
            errors.append(SpecError(
                f"metadata.{key} {value!r} does not match the status file's {part} {expected!r}: a status file "
                f"belongs at status/<environment>/<app>.yaml of its own app and environment",
                place=doc.place("metadata", key),
                hint=f"set metadata.{key} to {expected!r} if this is the status of {path.stem} in "
                     f"{path.parent.name}, else move the file to where it belongs or delete it"))
    return errors


def placed(root: Path, rel: str, found: Iterable[tuple[tuple[Any, ...], str, str]]) -> list[SpecError]:
    """Errors of the status file ``root/rel``, each at the place of its key path.

    Args:
        found: ``(keys under status, message, hint)`` per problem, e.g. from
            :func:`generator.rollout.decision.contradictions`.
    """
    found = list(found)
    if not found:
        return []
    try:
        doc = load_document(root / rel, rel)
        place: Any = doc.place
    except (SpecError, OSError):
        place = None
    return [SpecError(message, place=place("status", *keys) if place else Place(rel, 1, 1), hint=hint)
            for keys, message, hint in found]


def _check_times(doc: Any) -> list[SpecError]:
    """Times that match the schema's pattern but are no date (``2026-02-30T...``)."""
    errors = []
    st = doc.data["status"]
    for keys in (("lastStepTime",), ("lastCheck", "time"), ("applied", "time")):
        value: Any = st
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError as e:
                errors.append(SpecError(f"status.{'.'.join(keys)}: {as_yaml(value)} is not a time: {e}",
                                        place=doc.place("status", *keys),
                                        hint="write an RFC 3339 time such as 2026-01-02T03:04:05Z"))
    return errors


def place_of(root: Path, rel: str, *keys: Any) -> Place:
    """The place of the value at ``keys`` in the status file ``rel`` (its start when unreadable)."""
    try:
        return load_document(root / rel, rel).place(*keys)
    except (SpecError, OSError):
        return Place(rel, 1, 1)


def status_text(doc: dict[str, Any]) -> str:
    """A RolloutStatus document's YAML: PyYAML's C dumper, block style, keys in the order
    written (``apiVersion``, ``kind``, ``metadata``, ``status``)."""
    return yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False, width=1 << 16)


def dump_status(env: str, app: str, status: dict[str, Any],
                dump: Callable[[dict[str, Any]], str] = status_text) -> bytes:
    """The bytes of a status file: a header comment and the RolloutStatus document.

    Args:
        dump: the document's text as :func:`status_text` writes it (the bot passes
            :meth:`generator.render.shapes.Dumps.text` of it, which dumps once per shape).
    """
    doc = {"apiVersion": API_VERSION, "kind": "RolloutStatus",
           "metadata": {"name": app, "environment": env}, "status": status}
    return (f"# Rollout status of {app} in {env}, written by the meshgen rollout bot; do not edit.\n"
            + dump(doc)).encode()
