"""Argo CD and Flux manifests that sync ``rendered/<env>`` of the config repository.

meshgen never writes to a cluster; a GitOps controller does. When ``meshgen.yaml`` opts in
with a ``gitops`` section, rendering also writes the controller objects that point each
cluster at its environment's directory, so wiring a new environment is one merged pull
request. Written under ``rendered/_gitops/`` (an underscore never starts an environment
name), one object per file, each directory a kustomization ``kubectl kustomize`` builds:

``argocd/applications/``
    one Argo CD ``Application`` per environment (``argoproj.io/v1alpha1``), destination from
    the environment's ``spec.cluster``: its ``server``, else its ``name`` (Argo CD refuses
    both at once), else the cluster Argo CD runs in.
``argocd/applicationset/``
    the same Applications as one ``ApplicationSet`` with a list generator -- apply this
    directory *or* ``applications/``, not both.
``flux/<env>/``
    a Flux ``GitRepository`` (``source.toolkit.fluxcd.io/v1``) and ``Kustomization``
    (``kustomize.toolkit.fluxcd.io/v1``) for the Flux of that environment's cluster.

The settings (``meshgen.yaml``; defaults in :data:`DEFAULTS`)::

    gitops:
      repoURL: https://github.com/acme/mesh-config.git   # required: the repo the controllers read
      revision: main                                      # branch, tag or commit SHA
      path: rendered                                      # where <env>/ lives in repoURL
      argocd: {namespace: argocd, project: default, automated: true}   # or true / false
      flux: {namespace: flux-system, interval: 1m, prune: true}        # or true / false

This module is pure: settings and environment specs in, ``{path: bytes}`` out.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Mapping

GITOPS_DIR = "_gitops"
"""Where the controller manifests are written, inside the rendered directory."""

MANAGED_BY = {"app.kubernetes.io/managed-by": "meshgen"}
"""The label every meshgen-written object carries (DESIGN §5)."""

IN_CLUSTER = "https://kubernetes.default.svc"
"""Argo CD's name for the cluster it runs in."""

DEFAULTS: dict[str, Any] = {
    "revision": "main",
    "argocd": {"namespace": "argocd", "project": "default", "automated": True},
    "flux": {"namespace": "flux-system", "interval": "1m", "prune": True},
}
"""Values of the ``gitops`` settings when ``meshgen.yaml`` leaves them out (``path``
defaults to the repository's rendered directory). The JSON Schema of the section is in
``schemas/settings.schema.json``."""



def options(settings: Mapping[str, Any] | None, rendered_dir: str = "rendered") -> dict[str, Any] | None:
    """The ``gitops`` settings with defaults filled in; ``None`` when not opted in.

    ``argocd``/``flux`` become ``None`` when disabled (``false`` or absent) and a dict of
    their options otherwise (``true`` means all defaults).
    """
    if not settings:
        return None
    out: dict[str, Any] = {"repoURL": settings["repoURL"],
                           "revision": settings.get("revision", DEFAULTS["revision"]),
                           "path": settings.get("path", rendered_dir)}
    for tool in ("argocd", "flux"):
        value = settings.get(tool, False)
        out[tool] = None if value is False else {**DEFAULTS[tool], **(value if isinstance(value, dict) else {})}
    return out


def repo_name(url: str) -> str:
    """A DNS-1123 label from the repository URL's last path part (``mesh-config``)."""
    base = PurePosixPath(re.sub(r"^.*[:/]", "/", url.rstrip("/"))).name.removesuffix(".git")
    label = re.sub(r"[^a-z0-9-]+", "-", base.lower()).strip("-")
    return label[:40].strip("-") or "meshgen"


def destination(cluster: Mapping[str, Any] | None) -> dict[str, str]:
    """Argo CD ``spec.destination`` for an environment's ``spec.cluster``."""
    cluster = cluster or {}
    if cluster.get("server"):
        return {"server": cluster["server"]}
    if cluster.get("name"):
        return {"name": cluster["name"]}
    return {"server": IN_CLUSTER}


def flux_ref(revision: str) -> dict[str, str]:
    """Flux ``GitRepository.spec.ref`` for a revision: commit SHA, full ref name, or branch."""
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return {"commit": revision}
    if revision.startswith("refs/"):
        return {"name": revision}
    return {"branch": revision}


def manifests(settings: Mapping[str, Any] | None, environments: Mapping[str, Mapping[str, Any]],
              rendered_dir: str = "rendered") -> dict[str, bytes]:
    """The controller manifests for every environment.

    Args:
        settings: the ``gitops`` section of ``meshgen.yaml`` (validated by the settings
            schema), or ``None``.
        environments: ``{env name: Environment document data}`` (``spec.cluster`` is read).
        rendered_dir: the repository's rendered directory (``paths.rendered``).

    Returns:
        ``{repo-relative path under <rendered_dir>/_gitops/: bytes}``; empty when not opted in.
    """
    opts = options(settings, rendered_dir)
    if opts is None or not environments:
        return {}
    envs = sorted(environments)
    name = repo_name(opts["repoURL"])
    files: dict[str, Any] = {}
    clusters = {e: (environments[e].get("spec") or {}).get("cluster") for e in envs}
    if opts["argocd"] is not None:
        argo = opts["argocd"]
        for env in envs:
            files[f"argocd/applications/{env}.yaml"] = _application(opts, argo, name, env, clusters[env])
        files["argocd/applications/kustomization.yaml"] = _kustomization([f"{e}.yaml" for e in envs])
        files["argocd/applicationset/applicationset.yaml"] = _application_set(opts, argo, name, envs, clusters)
        files["argocd/applicationset/kustomization.yaml"] = _kustomization(["applicationset.yaml"])
    if opts["flux"] is not None:
        flux = opts["flux"]
        for env in envs:
            files[f"flux/{env}/gitrepository.yaml"] = _git_repository(opts, flux, name)
            files[f"flux/{env}/flux-kustomization.yaml"] = _flux_kustomization(opts, flux, name, env)
            files[f"flux/{env}/kustomization.yaml"] = _kustomization(
                ["gitrepository.yaml", "flux-kustomization.yaml"])
    return {f"{rendered_dir}/{GITOPS_DIR}/{path}": _dump(obj) for path, obj in sorted(files.items())}


def _dump(obj: Any) -> bytes:
    import yaml  # here: writing a cached rendering (a no-op) imports this module's constants only

    head = "# Generated by meshgen from meshgen.yaml (gitops) and environments/; do not edit.\n"
    return (head + yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=True,  # canonical, as render.dump default_flow_style=False,
                             allow_unicode=True, width=1 << 16)).encode()


def _kustomization(resources: list[str]) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
            "resources": resources}


def _meta(name: str, namespace: str, env: str | None = None) -> dict[str, Any]:
    labels = dict(MANAGED_BY)
    if env:
        labels["meshgen.io/environment"] = env
    return {"name": name, "namespace": namespace, "labels": labels}


def _app_spec(opts: Mapping[str, Any], argo: Mapping[str, Any], path: str,
              dest: Mapping[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "project": argo["project"],
        "source": {"repoURL": opts["repoURL"], "targetRevision": opts["revision"], "path": path},
        "destination": dict(dest),
    }
    if argo["automated"]:
        spec["syncPolicy"] = {"automated": {"prune": True, "selfHeal": True}}
    return spec


def _env_path(opts: Mapping[str, Any], env: str) -> str:
    return (PurePosixPath(opts["path"]) / env).as_posix()


def _application(opts, argo, name: str, env: str, cluster) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": _meta(f"{name}-{env}", argo["namespace"], env),
            "spec": _app_spec(opts, argo, _env_path(opts, env), destination(cluster))}


def _application_set(opts, argo, name: str, envs: list[str], clusters) -> dict[str, Any]:
    dests = {e: destination(clusters[e]) for e in envs}
    keys = {next(iter(d)) for d in dests.values()}
    mixed = len(keys) > 1
    key = "server" if mixed else next(iter(keys))
    elements = [{"env": e, **dests[e]} for e in envs]
    template = {
        "metadata": {"name": f"{name}-{{{{.env}}}}", "labels": {**MANAGED_BY, "meshgen.io/environment": "{{.env}}"}},
        "spec": _app_spec(opts, argo, _env_path(opts, "{{.env}}"), {key: f"{{{{.{key}}}}}"}),
    }
    spec: dict[str, Any] = {"goTemplate": True, "goTemplateOptions": ["missingkey=error"],
                            "generators": [{"list": {"elements": elements}}], "template": template}
    if mixed:  # environments differ in how their cluster is named: patch per element
        template["spec"]["destination"] = {}
        spec["templatePatch"] = (
            "spec:\n  destination:\n"
            "    {{- if hasKey . \"server\" }}\n    server: '{{ .server }}'\n"
            "    {{- else }}\n    name: '{{ .name }}'\n    {{- end }}\n")
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": _meta(name, argo["namespace"]), "spec": spec}


def _git_repository(opts, flux, name: str) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": _meta(name, flux["namespace"]),
            "spec": {"interval": flux["interval"], "url": opts["repoURL"], "ref": flux_ref(opts["revision"])}}


def _flux_kustomization(opts, flux, name: str, env: str) -> dict[str, Any]:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": _meta(f"{name}-{env}", flux["namespace"], env),
            "spec": {"interval": flux["interval"], "path": f"./{_env_path(opts, env)}",
                     "prune": flux["prune"], "sourceRef": {"kind": "GitRepository", "name": name}}}
