"""Extract the Gateway API's v1 schemas from its vendored CRDs into ``schemas/gateway-api/``.

Usage: ``python tools/sync_gateway_api_schemas.py`` (reads ``vendor/gateway-api/*.yaml``, the
standard channel CRDs that ``tools/vendor_crds.py`` refreshes).

Writes ``schemas/gateway-api/{gateway,httproute,grpcroute,referencegrant,tcproute,tlsroute}.json``: each kind's
``openAPIV3Schema`` of its newest served version (v1, or v1beta1 for ReferenceGrant), descriptions
dropped, ``x-kubernetes-validations`` (CEL rules) kept for :mod:`generator.render.cel`.
``tests/test_cel.py`` fails when the files are out of sync.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("Gateway", "HTTPRoute", "GRPCRoute", "ReferenceGrant", "TCPRoute", "TLSRoute")
VENDOR = ROOT / "vendor" / "gateway-api"
OUT = ROOT / "schemas" / "gateway-api"


def _drop_descriptions(node: object) -> object:
    if isinstance(node, dict):
        return {k: _drop_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_drop_descriptions(v) for v in node]
    return node


def build() -> dict[Path, str]:
    """Every file this tool writes, as ``{path: text}``."""
    out: dict[Path, str] = {}
    for path in sorted(VENDOR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            kind = doc["spec"]["names"]["kind"]
            if kind not in KINDS:
                continue
            served = [v for v in doc["spec"]["versions"] if v.get("served") and v.get("storage")]
            schema = _drop_descriptions(served[0]["schema"]["openAPIV3Schema"])
            out[OUT / f"{kind.lower()}.json"] = json.dumps(schema, indent=1, sort_keys=True) + "\n"
    return out


def main(argv: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in build().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
