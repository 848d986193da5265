"""``meshgen init DIR``: a new config repository that renders as it is.

It holds one App (``apps/hello.yaml``), two environments, ``meshgen.yaml`` with the default
paths, a copy of meshgen's JSON Schemas (so editors validate as you type through the
``# yaml-language-server: $schema=`` line each spec carries) and the first ``rendered/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from generator import resources
from generator.errors import UsageError
from generator.render import output, render

SETTINGS = """\
# yaml-language-server: $schema=schemas/settings.schema.json
# meshgen repository settings; every key is optional (the values below are the defaults).
apiVersion: meshgen.io/v1alpha1
kind: Settings
paths:
  apps: apps
  environments: environments
  templates: templates      # your own templates override meshgen's by file name
  rendered: rendered        # generated: commit it, never edit it by hand
  status: status            # written by the rollout bot only
"""

APP = """\
# yaml-language-server: $schema=../schemas/app.schema.json
apiVersion: meshgen.io/v1alpha1
kind: App
metadata:
  name: hello               # must equal the file name
  namespace: default
spec:
  service: {host: hello, port: 80}
  versions:
    v1: {labels: {version: v1}}
    v2: {labels: {version: v2}}
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
  routes:
    - name: beta-testers
      when: header "x-beta" exact "true"
      to: v2
    - name: default         # no `when`: matches everything, so it comes last
      to: {v1: 90, v2: 10}
      timeout: 5s
      retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,connect-failure"}
"""

ENVIRONMENT = """\
# yaml-language-server: $schema=../schemas/environment.schema.json
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: {env}}}
spec:
  cluster: {{name: {env}, server: https://{env}.k8s.example.com}}
  prometheus: {{url: http://prometheus.istio-system:9090}}
  ingress: {{selector: {{istio: ingressgateway}}}}
  apps: {{}}                  # per-app overrides, e.g. hello: {{spec: {{routes: [{{name: default, to: v1}}]}}}}
"""


def init(directory: Path) -> list[str]:
    """Create a config repository in ``directory`` and render it.

    Returns:
        The created files, relative to ``directory``, sorted.

    Raises:
        UsageError: ``directory`` exists and is not empty.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty; `meshgen init` only scaffolds a new repository")
    files = {"meshgen.yaml": SETTINGS, "apps/hello.yaml": APP,
             "environments/dev.yaml": ENVIRONMENT.format(env="dev"),
             "environments/prod.yaml": ENVIRONMENT.format(env="prod")}
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    shutil.copytree(resources.schemas_dir(), directory / "schemas")
    rendering = render.render_repo(directory)
    output.write_rendering(directory, rendering)
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
