"""Ask the environment's GitOps controller whether a commit is applied: Argo CD or Flux, via httpx.

Optional, where an environment's ``spec.sync`` names one (schemas/environment.schema.json):

- **Argo CD** (https://argo-cd.readthedocs.io/en/stable/developer-guide/api-docs/):
  ``GET <url>/api/v1/applications/<name>[?appNamespace=<ns>]`` with ``Authorization: Bearer
  <token>`` answers the Application; ``status.sync.revision`` is the git commit it last synced
  (``status.sync.status`` ``Synced``/``OutOfSync``) and ``status.operationState`` the last
  sync operation (``phase`` ``Running``, ``Succeeded``, ``Failed``, ``Error``, with a
  ``message``).
- **Flux** (https://fluxcd.io/flux/components/kustomize/kustomizations/#status): the
  Kubernetes API's ``GET <url>/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/<ns>/kustomizations/<name>``
  answers the Kustomization; ``status.lastAppliedRevision`` is ``<branch>@sha1:<sha>`` (Flux
  2.x) or ``<branch>/<sha>`` (older), its ``Ready`` condition says why not.

A commit counts as synced when the controller's revision is that commit or a later one (git
ancestry, asked of the bot's clone through the ``is_ancestor`` callable). Tokens come only
from the environment variable the spec names (``tokenEnv``), are sent as a bearer token and
are never printed: a failure is a :class:`~generator.rollout.applied.Sync` whose ``synced`` is
``None`` (the traffic alone then decides) and whose detail says what went wrong in words.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Mapping

import httpx

from generator.errors import redact
from generator.rollout.applied import Sync

ARGOCD_TOKEN_ENV = "ARGOCD_AUTH_TOKEN"
KUBE_TOKEN_ENV = "MESHGEN_KUBE_TOKEN"
FLUX_GROUP = "kustomize.toolkit.fluxcd.io/v1"
DEFAULT_TIMEOUT = 5.0
_SHA = re.compile(r"([0-9a-f]{40}|[0-9a-f]{64})$")


def configured(env_spec: Mapping[str, Any]) -> bool:
    """Whether an Environment's ``spec`` names a sync source."""
    return bool((env_spec.get("sync") or {}))


def source_of(env_spec: Mapping[str, Any], app: str) -> str:
    """What to look at, in words: ``the Argo CD Application books-dev``."""
    config = env_spec.get("sync") or {}
    if "argocd" in config:
        argo = config["argocd"]
        ns = f"{argo['appNamespace']}/" if argo.get("appNamespace") else ""
        return f"the Argo CD Application {ns}{str(argo['application']).replace('{app}', app)}"
    if "flux" in config:
        flux = config["flux"]
        return (f"the Flux Kustomization {flux.get('namespace') or 'flux-system'}/"
                f"{str(flux['kustomization']).replace('{app}', app)}")
    return "the Argo CD Application or Flux Kustomization that applies this environment's rendered/"


def revision_of(text: str) -> str | None:
    """The commit SHA in an Argo CD or Flux revision (``main@sha1:<sha>``, ``main/<sha>``, ``<sha>``)."""
    match = _SHA.search(text.strip().lower())
    return match.group(1) if match else None


def ask(env_spec: Mapping[str, Any], app: str, commit: str | None, is_ancestor: Callable[[str, str], bool | None],
        *, environ: Mapping[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT) -> Sync | None:
    """Whether the environment's controller has applied ``commit`` (``None``: none configured).

    Args:
        env_spec: the Environment's ``spec``.
        app: the app's name (``{app}`` in the Application or Kustomization name).
        commit: the SHA of the commit that set the weight (``None``: unknown; the answer is
            then ``synced=None``).
        is_ancestor: ``(older, newer)`` -> whether ``older`` is ``newer`` or its ancestor
            (``None`` when the clone does not know ``newer``).
        environ: where the token's variable is read (default: the process environment).
        timeout: seconds for the whole request.

    Never raises for a failing controller: see the module docstring.
    """
    config = env_spec.get("sync") or {}
    if not config:
        return None
    env = os.environ if environ is None else environ
    source = source_of(env_spec, app)
    if "argocd" in config:
        argo = config["argocd"]
        name = str(argo["application"]).replace("{app}", app)
        params = {"appNamespace": argo["appNamespace"]} if argo.get("appNamespace") else {}
        token_env = argo.get("tokenEnv") or ARGOCD_TOKEN_ENV
        url, path = argo["url"], f"/api/v1/applications/{name}"
    else:
        flux = config["flux"]
        name = str(flux["kustomization"]).replace("{app}", app)
        params = {}
        token_env = flux.get("tokenEnv") or KUBE_TOKEN_ENV
        url = flux["url"]
        path = f"/apis/{FLUX_GROUP}/namespaces/{flux.get('namespace') or 'flux-system'}/kustomizations/{name}"
    token = env.get(token_env)
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with httpx.Client(base_url=str(url).rstrip("/"), headers=headers, timeout=timeout) as client:
            response = client.get(path, params=params)
    except httpx.HTTPError as e:
        return Sync(None, source, f"could not ask it ({type(e).__name__}: {redact(str(e))[:200]})")
    if response.status_code in (401, 403):
        unset = "" if token else f"; ${token_env} is not set"
        return Sync(None, source, f"refused the bot's request (HTTP {response.status_code}{unset})")
    if response.status_code != 200:
        return Sync(None, source, f"answered HTTP {response.status_code}")
    try:
        body = response.json()
        status = body.get("status") or {}
    except (ValueError, AttributeError):
        return Sync(None, source, "answered something that is not a JSON object")
    if not isinstance(status, dict):
        return Sync(None, source, "answered without a status")
    if "argocd" in config:
        return _argocd(source, status, commit, is_ancestor)
    return _flux(source, status, commit, is_ancestor)


def _compare(source: str, revision: str | None, commit: str | None, is_ancestor: Callable[[str, str], bool | None],
             why: str) -> Sync:
    if revision is None:
        return Sync(False, source, f"has applied no revision yet{why}")
    short = revision[:12]
    if commit is None:
        return Sync(None, source, f"applied {short}")
    if revision.startswith(commit) or commit.startswith(revision):
        return Sync(True, source, f"applied {short}")
    later = is_ancestor(commit, revision)
    if later:
        return Sync(True, source, f"applied {short}, which contains {commit[:12]}")
    if later is None:
        return Sync(None, source, f"applied {short}, a commit this clone does not know")
    return Sync(False, source, f"applied {short}, not yet {commit[:12]}{why}")


def _argocd(source: str, status: Mapping[str, Any], commit: str | None,
            is_ancestor: Callable[[str, str], bool | None]) -> Sync:
    sync = status.get("sync") or {}
    operation = status.get("operationState") or {}
    revision = revision_of(str(sync.get("revision") or ""))
    why = ""
    if isinstance(operation, dict) and operation.get("phase"):
        message = " ".join(str(operation.get("message") or "").split())[:200]
        why = f"; sync operation {operation['phase']}" + (f": {message}" if message else "")
    state = str(sync.get("status") or "")
    if state and state != "Synced":
        why = f"; {state}{why}"
    return _compare(source, revision, commit, is_ancestor, why)


def _flux(source: str, status: Mapping[str, Any], commit: str | None,
          is_ancestor: Callable[[str, str], bool | None]) -> Sync:
    revision = revision_of(str(status.get("lastAppliedRevision") or ""))
    why = ""
    for condition in status.get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == "Ready" and condition.get("status") != "True":
            message = " ".join(str(condition.get("message") or "").split())[:200]
            why = f"; Ready {condition.get('status')}: {condition.get('reason', '')}" + (f", {message}" if message else "")
    return _compare(source, revision, commit, is_ancestor, why)
