"""deploy/: the rollout bot's image and Kubernetes manifests.

The manifests are built with ``kubectl kustomize`` and validated with kubernetes-validate
against the Kubernetes API schemas (strict: unknown fields refused). No container engine runs
here, so the Dockerfile is checked structurally through the official Dockerfile parser
(PyPI ``dockerfile``), and its build context is proven sufficient by building the wheel
``pip install .`` installs from exactly the files the Dockerfile copies.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import dockerfile
import kubernetes_validate
import pytest
import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
KUBERNETES_VERSION = "1.30.0"


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    proc = subprocess.run(["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def by_kind(objects: list[dict], kind: str) -> dict:
    [obj] = [o for o in objects if o["kind"] == kind]
    return obj


def pod_spec(objects: list[dict]) -> dict:
    return by_kind(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def test_kustomize_builds_namespace_serviceaccount_configmap_cronjob(objects: list[dict]) -> None:
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "CronJob", "Namespace", "ServiceAccount"]
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"meshgen"}


def test_every_object_is_valid_against_the_kubernetes_schemas(objects: list[dict]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_can_fail(objects: list[dict]) -> None:
    cronjob = by_kind(objects, "CronJob")
    broken = {**cronjob, "spec": {**cronjob["spec"], "concurrencyPolicy": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_no_cluster_access_at_all(objects: list[dict]) -> None:
    """No Role or binding of any kind, and no token in the pod: the bot only talks to git and Prometheus."""
    assert not [o for o in objects if o["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
    assert by_kind(objects, "ServiceAccount")["automountServiceAccountToken"] is False
    pod = pod_spec(objects)
    assert pod["serviceAccountName"] == "meshgen-bot" and pod["automountServiceAccountToken"] is False


def test_cronjob_runs_one_rollout_tick_without_overlap(objects: list[dict]) -> None:
    cronjob = by_kind(objects, "CronJob")["spec"]
    assert cronjob["concurrencyPolicy"] == "Forbid"
    job = cronjob["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] <= 600
    [container] = job["template"]["spec"]["containers"]
    script = container["args"][0]
    assert 'git clone --quiet --branch "$CONFIG_BRANCH" "$CONFIG_REPO" /work/config' in script
    assert script.rstrip().endswith("exec meshgen rollout step --push")
    config = by_kind(objects, "ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}}]
    assert set(config["data"]) == {"CONFIG_REPO", "CONFIG_BRANCH"}
    assert container["image"] == "registry.example.com/platform/meshgen:0.1.0"


def test_the_tick_script_clones_the_config_repository(objects: list[dict], tmp_path: Path) -> None:
    """Run the container's script as written, against a local config repository: it clones the
    configured branch, enters it and hands over to ``meshgen`` (here a stand-in printing its
    arguments and working directory, since the rollout command is not what this test is about)."""
    repo = tmp_path / "config"
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(repo)], check=True)
    (repo / "apps").mkdir()
    (repo / "apps" / "a.yaml").write_text("a\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "--quiet", "-m", "x"], check=True)
    [container] = pod_spec(objects)["containers"]
    work = tmp_path / "work"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "meshgen").write_text('#!/bin/sh\necho "meshgen $* in $(pwd)"\n')
    (bin_dir / "meshgen").chmod(0o755)
    script = container["args"][0].replace("/work/config", str(work / "config"))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CONFIG_REPO": str(repo), "CONFIG_BRANCH": "main",
           "HOME": str(tmp_path)}
    proc = subprocess.run([*container["command"], script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"meshgen rollout step --push in {work / 'config'}\n"
    assert (work / "config" / "apps" / "a.yaml").read_text() == "a\n"


def test_pod_is_locked_down(objects: list[dict]) -> None:
    pod = pod_spec(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    sc = container["securityContext"]
    assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    # every path the bot writes is a volume, since the root filesystem is read-only
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert {"/work", "/home/meshgen", "/tmp"} <= set(mounts)
    env = {e["name"]: e for e in container["env"]}
    assert env["HOME"]["value"] == "/home/meshgen"
    assert env["MESHGEN_BOT_NAME"]["value"] == "meshgen rollout bot"


def test_deploy_key_comes_from_a_secret_and_hosts_are_pinned(objects: list[dict]) -> None:
    pod = pod_spec(objects)
    [container] = pod["containers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret = volumes["deploy-key"]["secret"]
    assert secret["secretName"] == "meshgen-bot-ssh" and secret["defaultMode"] == 0o440
    mount = next(m for m in container["volumeMounts"] if m["name"] == "deploy-key")
    assert mount["readOnly"] is True
    ssh = next(e["value"] for e in container["env"] if e["name"] == "GIT_SSH_COMMAND")
    assert f"-i {mount['mountPath']}/identity" in ssh
    assert f"UserKnownHostsFile={mount['mountPath']}/known_hosts" in ssh
    assert "StrictHostKeyChecking=yes" in ssh
    # the key file is root-owned and group-readable through fsGroup, which OpenSSH accepts
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]


# ----------------------------------------------------------------------------------- Dockerfile


@pytest.fixture(scope="module")
def instructions() -> tuple:
    return dockerfile.parse_file(str(DEPLOY / "Dockerfile"))


def test_dockerfile_base_is_a_pinned_python_slim_image(instructions: tuple) -> None:
    froms = [c.value[0] for c in instructions if c.cmd == "FROM"]
    assert len(froms) == 1
    image, _, tag = froms[0].partition(":")
    assert image == "python" and tag.endswith("-slim") and tag[0].isdigit()


def test_dockerfile_installs_meshgen_and_runs_it_as_a_non_root_uid(instructions: tuple, objects: list[dict]) -> None:
    cmds = [c.cmd for c in instructions]
    pip = next(i for i, c in enumerate(instructions) if c.cmd == "RUN" and "pip install --no-cache-dir ." in c.value[0])
    users = [i for i, c in enumerate(cmds) if c == "USER"]
    assert users and users[-1] > pip, "the final USER must come after the installation"
    uid = instructions[users[-1]].value[0].split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert pod_spec(objects)["securityContext"]["runAsUser"] == int(uid)
    entry = next(c for c in instructions if c.cmd == "ENTRYPOINT")
    assert entry.json and entry.value == ("meshgen",)
    assert not [c for c in instructions if c.cmd == "ADD"], "COPY only: ADD fetches URLs and unpacks archives"


def test_dockerfile_installs_git_and_ssh_for_the_bot(instructions: tuple) -> None:
    apt = next(c.value[0] for c in instructions if c.cmd == "RUN" and "apt-get install" in c.value[0])
    words = apt.split()
    assert "--no-install-recommends" in words and "git" in words and "openssh-client" in words
    assert "rm -rf /var/lib/apt/lists/*" in apt


def test_dockerfile_build_context_is_enough_for_pip_install(instructions: tuple, tmp_path: Path) -> None:
    """Copy exactly what the Dockerfile copies (and its .dockerignore lets through), then build the wheel."""
    ignore = [line.strip() for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    allowed = [p[1:].rstrip("/") for p in ignore if p.startswith("!")]
    context = tmp_path / "context"
    context.mkdir()
    sources = [s for c in instructions if c.cmd == "COPY" for s in c.value[:-1]]
    for source in sources:
        src = source.rstrip("/")
        assert any(fnmatch.fnmatch(src, a) for a in allowed), f"{src} is excluded by Dockerfile.dockerignore"
        path = ROOT / src
        assert path.exists(), f"COPY {src}: no such file in the repository"
        if path.is_dir():
            shutil.copytree(path, context / src, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, context / src)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "wheel"), str(context)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    names = set(zipfile.ZipFile(next((tmp_path / "wheel").glob("meshgen-*.whl"))).namelist())
    assert {"generator/cli/__init__.py", "generator/templates/virtualservice.yaml.j2",
            "generator/schemas/settings.schema.json"} <= names
