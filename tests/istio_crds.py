"""Istio's own CRD schemas (``vendor/istio/crd-all.gen.yaml``, Istio 1.30.3) as test validators.

Object schemas under ``spec`` are closed (see ``tests/crds.py``): a field Istio would drop is a
test failure.
"""

from __future__ import annotations

from typing import Any

from tests import crds


def problems(obj: dict[str, Any]) -> list[str]:
    """Every schema violation of ``obj`` (an Istio object), as ``path: message`` strings."""
    return crds.problems(obj, crds.ISTIO)
