"""The rollout bot on what the grown spec format can write: a canary on one route of a fan-out
VirtualService, on a TCP route's weights, and on the subsets of another app's host. Real
Prometheus, real git, the bot's tick in process (as tests/test_rollout.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from generator.bot import bot
from generator.render import output, render
from demo.fakemesh import FakeMesh
from tests.conftest import build_file_tree
from tests.promfixtures import git, wait_until

ENV = """\
apiVersion: meshgen.io/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  cluster: {{name: dev, server: https://dev.example.com}}
  prometheus: {{url: {url}}}
  externalHosts: [legacy.web.svc.cluster.local]
"""
ROLLOUT = ('{stable: v1, canary: v2, route: default, steps: [50, 100], interval: 3s, '
           'analysis: {minRequests: 20, failureLimit: 2}}')

FAN_OUT = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: ratings, namespace: {ns}}}
spec:
  service: {{host: ratings, port: 80}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  routes:
    - name: legacy
      when: uri prefix "/old"
      to: {{host: legacy.web.svc.cluster.local, port: 8080}}
    - name: default
      to: v1
  rollout: {rollout}
"""
TCP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: ratings, namespace: {ns}}}
spec:
  service: {{host: ratings, port: 5432}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  tcp:
    - name: default
      match: [{{port: 5432}}]
      to: v1
  rollout: {rollout}
"""
# the ratings app owns the host and its subsets; the front app's route moves between them
SHARED_OWNER = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: ratings, namespace: {ns}}}
spec:
  service: {{host: ratings, port: 80}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
"""
SHARED_FRONT = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: front, namespace: {ns}}}
spec:
  service: {{host: front, port: 80}}
  hosts: [ratings-alias.{ns}.svc.cluster.local]
  routes:
    - name: default
      to: [{{host: ratings, subset: v1, weight: 100}}, {{host: ratings, subset: v2, weight: 0}}]
  rollout: {rollout}
"""


@pytest.fixture
def meshes():
    """The fake meshes a test starts (closed after it)."""
    started: list[FakeMesh] = []
    yield started
    for mesh in started:
        mesh.close()


def make(tmp_path: Path, git_remote, url: str, apps: dict[str, str], ns: str,
         traffic=None, meshes: list | None = None, follow: tuple[str, str] = ("ratings", "ratings")) -> tuple[Path, Path]:
    """The apps pushed to a bare remote; with ``traffic``, a :class:`FakeMesh` applies the
    weight the remote commits for the app ``follow[0]`` (requests of service ``follow[1]``) at once."""
    files = {f"apps/{name}.yaml": text.format(ns=ns, rollout=ROLLOUT) for name, text in apps.items()}
    tree = build_file_tree(tmp_path / "bot", {**files, "environments/dev.yaml": ENV.format(url=url)})
    output.write_rendering(tree, render.render_repo(tree))
    remote, work = git_remote(tree)
    if traffic is not None:
        mesh = FakeMesh(traffic, remote)
        meshes.append(mesh)
        mesh.follow("dev", follow[0], ns, follow[1], "v1", "v2", 40)
    return remote, work


def run_to_success(work: Path) -> None:
    def once() -> bool:
        report = bot.tick(work, push=True)
        return any(o.decision.action.value == "succeed" for o in report.commits)

    wait_until(once, 40.0, interval=0.4, what="the rollout to succeed")


def rendered_vs(remote: Path, ns: str, app: str) -> dict:
    return yaml.safe_load(git(remote, "show", f"main:rendered/dev/{ns}/{app}/virtualservice.yaml"))["spec"]


def healthy(traffic, ns: str, service: str = "ratings") -> None:
    for version in ("v1", "v2"):
        traffic.set(ns, service, version, rps=40, error_ratio=0.0, latency_ms=20)


@pytest.mark.prometheus
def test_canary_on_one_route_of_a_fan_out_virtualservice(tmp_path, git_remote, prometheus, mesh_traffic, meshes):
    healthy(mesh_traffic, "fanout")
    remote, work = make(tmp_path, git_remote, prometheus.url, {"ratings": FAN_OUT}, "fanout", mesh_traffic, meshes)
    run_to_success(work)
    http = {r["name"]: r["route"] for r in rendered_vs(remote, "fanout", "ratings")["http"]}
    assert [(d["destination"]["subset"], d["weight"]) for d in http["default"]] == [("v2", 100)]
    assert http["legacy"] == [{"destination": {"host": "legacy.web.svc.cluster.local", "port": {"number": 8080}}}]


@pytest.mark.prometheus
def test_canary_on_a_tcp_route(tmp_path, git_remote, prometheus, mesh_traffic, meshes):
    healthy(mesh_traffic, "tcpcanary")
    remote, work = make(tmp_path, git_remote, prometheus.url, {"ratings": TCP}, "tcpcanary", mesh_traffic, meshes)
    weights = []

    def once() -> bool:
        report = bot.tick(work, push=True)
        tcp = rendered_vs(remote, "tcpcanary", "ratings")["tcp"][0]
        weights.append([(d["destination"]["subset"], d["weight"]) for d in tcp["route"]])
        return any(o.decision.action.value == "succeed" for o in report.commits)

    wait_until(once, 40.0, interval=0.4, what="the rollout to succeed")
    assert [("v1", 50), ("v2", 50)] in weights
    assert weights[-1] == [("v2", 100)]
    assert rendered_vs(remote, "tcpcanary", "ratings")["tcp"][0]["match"] == [{"port": 5432}]


@pytest.mark.prometheus
def test_canary_on_the_subsets_of_another_apps_host(tmp_path, git_remote, prometheus, mesh_traffic, meshes):
    healthy(mesh_traffic, "shared")  # the canary's requests are labelled with the shared host's service
    remote, work = make(tmp_path, git_remote, prometheus.url,
                        {"ratings": SHARED_OWNER, "front": SHARED_FRONT}, "shared", mesh_traffic, meshes,
                        follow=("front", "ratings"))
    run_to_success(work)
    route = rendered_vs(remote, "shared", "front")["http"][0]["route"]
    assert route == [{"destination": {"host": "ratings.shared.svc.cluster.local", "subset": "v2"}, "weight": 100}]
    log = git(remote, "log", "--format=%s", "main")
    assert "rollout front (dev): step canary v2, 50 % -> 100 %" in log
