"""Istio's own CRD schemas (../shared/istio/crd-all.gen.yaml, Istio 1.30.3) as test validators.

The CRDs do not forbid unknown fields (the API server prunes them silently), so for tests
every object schema under ``spec`` that lists its properties is closed with
``additionalProperties: false``: a field Istio would drop is a test failure.
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
import yaml

from tests.conftest import ISTIO_CRDS


def _close(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _close(v) for k, v in node.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_close(v) for v in node]
    return node


@functools.cache
def validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """``{(apiVersion, kind): validator}`` for every version of every Istio CRD."""
    out = {}
    for doc in yaml.load_all(ISTIO_CRDS.read_text(), Loader=yaml.CSafeLoader):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
        for version in doc["spec"]["versions"]:
            schema = dict(version["schema"]["openAPIV3Schema"])
            schema["properties"] = dict(schema["properties"])
            schema["properties"]["spec"] = _close(schema["properties"]["spec"])
            out[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return out


def problems(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of ``obj`` (an Istio object), as ``path: message`` strings."""
    validator = validators()[(obj["apiVersion"], obj["kind"])]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
