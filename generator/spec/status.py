"""Rollout status files: ``status/<env>/<app>.yaml`` (DESIGN §6), written only by the rollout bot.

The schema is ``schemas/rolloutstatus.schema.json``. The renderer reads a status to apply the
canary weight to the rollout's route; the bot reads and writes it. Writes are atomic
(:func:`generator.render.output.atomic_write`) and byte-deterministic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from generator.errors import SpecError, SpecErrors
from generator.spec import schema
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
    if not path.is_file():
        return None
    try:
        doc = load_document(path, rel)
    except SpecError as e:
        raise SpecErrors([e]) from e
    SpecErrors.collect(schema.validate(doc.data, "rolloutstatus.schema.json", doc.place, doc.key_place))
    return doc.data["status"]


def dump_status(env: str, app: str, status: dict[str, Any]) -> bytes:
    """The bytes of a status file: a header comment and the RolloutStatus document."""
    doc = {"apiVersion": API_VERSION, "kind": "RolloutStatus",
           "metadata": {"name": app, "environment": env}, "status": status}
    text = yaml.dump(doc, Dumper=yaml.CSafeDumper, sort_keys=False, default_flow_style=False, width=1 << 16)
    return (f"# Rollout status of {app} in {env}, written by the meshgen rollout bot; do not edit.\n"
            + text).encode()
