"""The Istio teams run, written as specs: each construct of docs/writing-specs.md ("Writing the
Istio you already run") rendered, validated against Istio's CRDs, and refused where Istio is
silent; plus the defects found on the way."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from generator.errors import SpecErrors
from generator.render import analysis, render
from tests import istio_crds
from tests.conftest import build_file_tree, run_meshgen

ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {name: dev}
spec:
  ingress: {selector: {istio: ingressgateway}}
"""


def app_text(name: str, spec: str, namespace: str = "shop") -> str:
    return (f"apiVersion: meshgen.io/v1alpha1\nkind: App\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
            "spec:\n" + textwrap.indent(textwrap.dedent(spec), "  "))


def repo(tmp_path: Path, apps: dict[str, str], env: str = ENV) -> Path:
    files = {"environments/dev.yaml": env}
    files.update({f"apps/{name}.yaml": app_text(name, spec) for name, spec in apps.items()})
    return build_file_tree(tmp_path, files)


def rendered(root: Path) -> tuple[dict[tuple[str, str], dict[str, Any]], list[analysis.Finding]]:
    """``{(app, kind): spec}`` of every object rendered in dev, and the analysis findings."""
    rendering = render.render_repo(root, strict=True, cache=False)
    for o in rendering.objects:
        assert istio_crds.problems(o.obj) == [], o.path
    return {(o.app, o.kind): o.obj["spec"] for o in rendering.objects}, analysis.analyze(rendering)


def errors(root: Path) -> list[str]:
    with pytest.raises(SpecErrors) as e:
        render.render_repo(root, strict=True, cache=False)
    return [x.format() for x in e.value.errors]


# -- defects ----------------------------------------------------------------------------------------

def test_two_label_domain_on_the_gateway_is_not_taken_for_name_dot_namespace(tmp_path: Path) -> None:
    root = repo(tmp_path, {"web": """\
        service: {host: web, port: 80}
        versions: {v1: {labels: {version: v1}}}
        expose: {hosts: [example.com]}
        routes:
          - name: default
            to: v1
        """})
    assert run_meshgen("render", cwd=root).returncode == 0
    proc = run_meshgen("check", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MG103" not in proc.stdout + proc.stderr


def test_deprecated_fault_percent_is_accepted_and_rendered_verbatim(tmp_path: Path) -> None:
    root = repo(tmp_path, {"web": """\
        service: {host: web, port: 80}
        versions: {v1: {labels: {version: v1}}}
        routes:
          - name: default
            to: v1
            fault: {delay: {percent: 100, fixedDelay: 5s}}
        """})
    objects, findings = rendered(root)
    assert objects[("web", "VirtualService")]["http"][0]["fault"] == {"delay": {"percent": 100, "fixedDelay": "5s"}}
    assert analysis.errors_of(findings) == []


@pytest.mark.parametrize("percent", [0, 101])
def test_deprecated_fault_percent_outside_1_to_100_is_refused(tmp_path: Path, percent: int) -> None:
    root = repo(tmp_path, {"web": f"""\
        service: {{host: web, port: 80}}
        versions: {{v1: {{labels: {{version: v1}}}}}}
        routes:
          - name: default
            to: v1
            fault: {{delay: {{percent: {percent}, fixedDelay: 5s}}}}
        """})
    [error] = errors(root)
    assert "apps/web.yaml:10:32:" in error and "fault.delay.percent must be between 1 and 100" in error
