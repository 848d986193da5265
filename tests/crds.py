"""The vendored CRDs (``vendor/``: Istio, Argo CD, Flux) as JSON Schema validators for tests.

A CRD's ``openAPIV3Schema`` does not forbid unknown fields (the API server prunes them
silently), so for tests every object schema under ``spec`` that lists its properties is closed
with ``additionalProperties: false`` (unless it says ``x-kubernetes-preserve-unknown-fields``):
a field the controller would drop is a test failure.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.conftest import ROOT

VENDOR = ROOT / "vendor"
ISTIO = (VENDOR / "istio" / "crd-all.gen.yaml",)
GITOPS = (VENDOR / "argo-cd" / "application-crd.yaml", VENDOR / "argo-cd" / "applicationset-crd.yaml",
          VENDOR / "flux" / "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
          VENDOR / "flux" / "source.toolkit.fluxcd.io_gitrepositories.yaml")


def _close(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _close(v) for k, v in node.items()}
        if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [_close(v) for v in node]
    return node


@functools.cache
def validators(bundles: tuple[Path, ...]) -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """``{(apiVersion, kind): validator}`` for every version of every CRD in ``bundles``."""
    out = {}
    for bundle in bundles:
        for doc in yaml.load_all(bundle.read_text(), Loader=yaml.CSafeLoader):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = dict(version["schema"]["openAPIV3Schema"])
                schema["properties"] = dict(schema["properties"])
                schema["properties"]["spec"] = _close(schema["properties"]["spec"])
                out[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return out


def problems(obj: dict[str, Any], bundles: tuple[Path, ...]) -> list[str]:
    """Every schema violation of ``obj`` as ``path: message`` strings (KeyError: no CRD for its kind)."""
    validator = validators(bundles)[(obj["apiVersion"], obj["kind"])]
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]
