"""The spec examples of README.md and docs/*.md validate, so the docs cannot drift from the code.

Each ```yaml block that is an App (``kind: App``) is validated as it stands; a block that is a
fragment of one (``routes``, ``expose``, ``rollout`` or ``tests``, bare or under ``spec:``) is first
completed into a minimal App. Environment, settings and Kubernetes examples are left to the
tests of those features.
"""

from __future__ import annotations

import copy
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.render import analysis, render
from tests.conftest import ROOT, build_file_tree

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.S | re.M)
FRAGMENT_KEYS = {"routes", "expose", "rollout", "tests"}

ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  ingress: {selector: {istio: ingressgateway}}
"""

BASE_APP: dict[str, Any] = {
    "apiVersion": "meshgen.io/v1alpha1", "kind": "App",
    "metadata": {"name": "example", "namespace": "mesh"},
    "spec": {"service": {"host": "example", "port": 80},
             "versions": {"v1": {"labels": {"version": "v1"}}, "v2": {"labels": {"version": "v2"}}},
             "routes": [{"name": "default", "to": "v1"}]},
}


def as_app(data: Any) -> dict[str, Any] | None:
    """The App an example shows: itself, a fragment completed from :data:`BASE_APP`, or ``None``."""
    if not isinstance(data, dict):
        return None
    if data.get("kind") == "App":
        return data
    spec = data["spec"] if set(data) == {"spec"} else data
    if isinstance(spec, dict) and spec and set(spec) <= FRAGMENT_KEYS:
        app = copy.deepcopy(BASE_APP)
        app["spec"].update(spec)
        return app
    return None


def examples() -> list[Any]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in BLOCK.finditer(text):
            app = as_app(yaml.safe_load(textwrap.dedent(match.group(1))))
            if app is not None:
                line = text[:match.start()].count("\n") + 1
                found.append(pytest.param(app, id=f"{doc.relative_to(ROOT).as_posix()}:{line}"))
    return found


EXAMPLES = examples()


def test_every_guide_with_spec_examples_is_covered() -> None:
    docs = {param.id.split(":")[0] for param in EXAMPLES}
    assert {"README.md", "docs/writing-specs.md", "docs/rollouts.md", "docs/conditions.md"} <= docs


@pytest.mark.parametrize("app", EXAMPLES)
def test_doc_example_validates(tmp_path: Path, app: dict[str, Any]) -> None:
    name = app["metadata"]["name"]
    root = build_file_tree(tmp_path, {"environments/dev.yaml": ENV,
                                      f"apps/{name}.yaml": yaml.safe_dump(app, sort_keys=False)})
    rendering = render.render_repo(root, strict=True, cache=False)  # raises SpecErrors, listing them
    assert [f.format() for f in analysis.errors_of(analysis.analyze(rendering))] == []
