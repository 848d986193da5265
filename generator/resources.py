"""Where meshgen's built-in schemas and templates live.

In a source checkout (or an editable install) they are the repository's own ``schemas/`` and
``templates/``; in a wheel they are package data under ``generator/schemas`` and
``generator/templates`` (pyproject maps the directories there).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _directory(name: str, marker: str) -> Path:
    source = _SOURCE_ROOT / name
    if (source / marker).is_file():
        return source
    # generator.schemas and generator.templates are namespace packages (no __init__.py), for which
    # files() is a MultiplexedPath whose str() is not a path; joinpath() gives a real one.
    import importlib.resources  # here: a source checkout (and a no-op render) never needs it

    return Path(str(importlib.resources.files(f"generator.{name}").joinpath(marker))).parent


@functools.cache
def schemas_dir() -> Path:
    """Directory of the built-in JSON Schemas (``app.schema.json``, ``istio/*.json``, ...)."""
    return _directory("schemas", "app.schema.json")


@functools.cache
def templates_dir() -> Path:
    """Directory of the built-in Jinja2 templates (one per Istio kind, plus kustomization)."""
    return _directory("templates", "virtualservice.yaml.j2")


@functools.cache
def schema(name: str) -> dict[str, Any]:
    """A built-in schema by file name, e.g. ``"app.schema.json"`` or ``"istio/gateway.json"``."""
    return json.loads((schemas_dir() / name).read_text(encoding="utf-8"))
