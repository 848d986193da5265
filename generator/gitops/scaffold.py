"""``meshgen init DIR``: a new config repository that renders as it is.

It holds one App (``apps/hello.yaml``), two environments, ``meshgen.yaml`` with the default
paths, a copy of meshgen's JSON Schemas (so editors validate as you type through the
``# yaml-language-server: $schema=`` line each spec carries) and the first ``rendered/``. Unless
the directory is already inside a git repository, it becomes one (branch ``main``) with all of
that as its first commit, so ``meshgen diff`` has a base to compare with from the start.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import git

from generator import resources
from generator.errors import GitError, UsageError
from generator.gitops import publish
from generator.render import output, render

FIRST_COMMIT = "meshgen init: one app, two environments, rendered"
"""Subject of the first commit of a repository ``meshgen init`` creates."""


@dataclass(frozen=True)
class Scaffold:
    """What ``meshgen init`` made.

    Attributes:
        files: the created files, relative to the directory, sorted.
        commit: SHA of the new repository's first commit; ``None`` when the directory was
            already inside a git repository (its files are left for you to commit).
        git_root: the work tree of the enclosing repository in that case, else ``None``.
    """

    files: list[str]
    commit: str | None
    git_root: Path | None

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


def init(directory: Path) -> Scaffold:
    """Create a config repository in ``directory``, render it and, unless ``directory`` is
    inside a git repository already, make it one with a first commit.

    Raises:
        UsageError: ``directory`` exists and is not empty.
        GitError: ``git init`` or the first commit failed.
    """
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory} is not empty; `meshgen init` only scaffolds a new repository")
    enclosing = _enclosing_repository(directory)
    files = {"meshgen.yaml": SETTINGS, "apps/hello.yaml": APP,
             "environments/dev.yaml": ENVIRONMENT.format(env="dev"),
             "environments/prod.yaml": ENVIRONMENT.format(env="prod")}
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    shutil.copytree(resources.schemas_dir(), directory / "schemas",
                    ignore=shutil.ignore_patterns("gateway-api"))  # the CEL schemas: no spec refers to them
    rendering = render.render_repo(directory)
    output.write_rendering(directory, rendering)
    created = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    if enclosing is not None:
        return Scaffold(created, None, enclosing)
    try:
        repo = git.Repo.init(directory, initial_branch="main")
        repo.git.add("--all")
        with repo.git.custom_environment(**_identity(repo)):
            repo.git.commit("--quiet", "--no-verify", "-m", FIRST_COMMIT)
    except git.GitCommandError as e:
        raise GitError(f"git could not make {directory} a repository: {publish.git_detail(e)}") from e
    return Scaffold(created, repo.head.commit.hexsha, None)


def _identity(repo: git.Repo) -> dict[str, str]:
    """Environment for the first commit: git's own identity when it has one, else meshgen's."""
    if (repo.config_reader().get_value("user", "email", "") or os.environ.get("GIT_AUTHOR_EMAIL")
            or os.environ.get("EMAIL")):
        return {}
    name, email = publish.DEFAULT_IDENTITY
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
            "GIT_COMMITTER_EMAIL": email}


def _enclosing_repository(directory: Path) -> Path | None:
    """The work tree of the git repository ``directory`` (existing or not) would be inside."""
    existing = directory.resolve()
    while not existing.exists():
        existing = existing.parent
    try:
        repo = git.Repo(existing, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    return Path(repo.working_tree_dir) if repo.working_tree_dir else None
