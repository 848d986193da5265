"""Extract Istio's networking.istio.io/v1 schemas from Istio's CRD bundle into ``schemas/``.

Usage: ``python tools/sync_istio_schemas.py [CRD_BUNDLE]`` (default ``vendor/istio/crd-all.gen.yaml``,
the vendored copy of Istio's ``manifests/charts/base/files/crd-all.gen.yaml``; ``tools/vendor_crds.py``
refreshes it).

Writes ``schemas/istio/{destinationrule,virtualservice,gateway,serviceentry}.json`` -- each kind's
``openAPIV3Schema`` of version v1, descriptions dropped, ``additionalProperties: false`` added to every
object that lists its properties (the API server would prune unknown fields silently; meshgen
refuses them) -- and refreshes the ``$defs`` that ``schemas/app.schema.json`` borrows from Istio
(``istio.TrafficPolicy``, ``istio.HTTPRetry``, ``istio.HTTPFaultInjection``, and the route's
``istio.HTTPRewrite``, ``istio.HTTPRedirect``, ``istio.HTTPDirectResponse``, ``istio.Headers``,
``istio.CorsPolicy``, ``istio.Delegate``; the TCP and TLS routes' ``istio.L4MatchAttributes`` and
``istio.TLSMatchAttributes``; the Gateway's ``istio.Server``; the ServiceEntry's fields as
``istio.ServiceEntry``). Re-run it when moving
to a new Istio release; ``tests/test_render.py`` fails when the files are out of sync.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("DestinationRule", "VirtualService", "Gateway", "ServiceEntry")
BUNDLE = ROOT / "vendor" / "istio" / "crd-all.gen.yaml"


def strict(node: object) -> object:
    """Copy of an OpenAPI schema without descriptions, with closed objects."""
    if isinstance(node, dict):
        out = {k: strict(v) for k, v in node.items() if k != "description"}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [strict(v) for v in node]
    return node


def istio_schemas(bundle: Path) -> dict[str, dict]:
    """``{kind: openAPIV3Schema of v1}`` for the networking kinds meshgen renders."""
    found: dict[str, dict] = {}
    for doc in yaml.load_all(bundle.read_text(), Loader=yaml.CSafeLoader):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        if spec["group"] != "networking.istio.io" or spec["names"]["kind"] not in KINDS:
            continue
        for version in spec["versions"]:
            if version["name"] == "v1":
                found[spec["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return found


def build(bundle: Path) -> dict[Path, str]:
    """Every file this tool writes, as ``{path: text}``."""
    schemas = {}
    for kind, raw in istio_schemas(bundle).items():  # close objects under spec, not the envelope
        schemas[kind] = {k: v for k, v in raw.items() if k != "description"}
        schemas[kind]["properties"] = {**raw["properties"], "spec": strict(raw["properties"]["spec"])}
    files: dict[Path, str] = {}
    for kind, schema in schemas.items():
        schema = {"$comment": f"networking.istio.io/v1 {kind}, extracted from Istio's CRD bundle by "
                              "tools/sync_istio_schemas.py; do not edit", **schema}
        files[ROOT / "schemas" / "istio" / f"{kind.lower()}.json"] = json.dumps(schema, indent=1, sort_keys=True) + "\n"
    app_path = ROOT / "schemas" / "app.schema.json"
    app = json.loads(app_path.read_text())
    http = schemas["VirtualService"]["properties"]["spec"]["properties"]["http"]["items"]["properties"]
    app["$defs"]["istio.TrafficPolicy"] = schemas["DestinationRule"]["properties"]["spec"]["properties"]["trafficPolicy"]
    app["$defs"]["istio.HTTPRetry"] = http["retries"]
    app["$defs"]["istio.HTTPFaultInjection"] = http["fault"]
    for key, name in (("rewrite", "HTTPRewrite"), ("redirect", "HTTPRedirect"), ("directResponse", "HTTPDirectResponse"),
                      ("headers", "Headers"), ("corsPolicy", "CorsPolicy"), ("delegate", "Delegate")):
        app["$defs"][f"istio.{name}"] = http[key]
    vs = schemas["VirtualService"]["properties"]["spec"]["properties"]
    app["$defs"]["istio.L4MatchAttributes"] = vs["tcp"]["items"]["properties"]["match"]["items"]
    app["$defs"]["istio.TLSMatchAttributes"] = vs["tls"]["items"]["properties"]["match"]["items"]
    # a spec may leave out a server's and a ServiceEntry's hosts (they default to the app's, see
    # docs/writing-specs.md); the rendered object is still validated against Istio's full schema
    for name, spec in (("istio.Server", schemas["Gateway"]["properties"]["spec"]["properties"]["servers"]["items"]),
                       ("istio.ServiceEntry", schemas["ServiceEntry"]["properties"]["spec"])):
        required = [r for r in spec.get("required") or [] if r != "hosts"]
        app["$defs"][name] = {k: v for k, v in spec.items() if k != "required"}
        if required:
            app["$defs"][name]["required"] = required
    files[app_path] = json.dumps(app, indent=2) + "\n"
    return files


def main(argv: list[str]) -> int:
    bundle = Path(argv[1]) if len(argv) > 1 else BUNDLE
    for path, text in build(bundle).items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
