"""The applied weight: the pure rule (generator/rollout/applied.py) as tables and properties, the
Argo CD / Flux client against a local server speaking their JSON, and the bot end to end with a
real Prometheus and a fake mesh that applies (or never applies) the committed weight."""

from __future__ import annotations

import http.server
import json
import math
import threading
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from demo.fakemesh import FakeMesh
from generator.bot import bot
from generator.bot import sync as bot_sync
from generator.render import output, render
from generator.rollout import applied, decision, gates, history
from generator.rollout.applied import Observation, Pending, Sync
from generator.rollout.decision import Action, Check, Rollout, Verdict
from tests.conftest import build_file_tree
from tests.promfixtures import git, wait_until

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
ROLLOUT = Rollout(stable="v1", canary="v2", route="default", steps=(10, 25, 50, 100), interval=60.0,
                  interval_text="1m")


def progressing(weight: int, stepped: datetime = NOW - timedelta(seconds=30), **extra) -> dict:
    return {"phase": "Progressing", "stable": "v1", "canary": "v2", "canaryWeight": weight,
            "stepIndex": ROLLOUT.steps.index(weight) if weight in ROLLOUT.steps else 0, "failedChecks": 0,
            "lastStepTime": decision.format_time(stepped), **extra}


def decide(status, pending, check=None, now=NOW, timeout=600.0):
    return applied.decide(ROLLOUT, status, pending, now, timeout, "10m",
                          rest=lambda: gates.decide(ROLLOUT, "dev", status, check, now))


# --- the rule, as a table ------------------------------------------------------------------


def test_a_weight_not_yet_applied_holds_and_says_what_it_saw():
    made = decide(progressing(25), Pending(Observation(41.2, 370.8, "1m")))
    assert made.action is Action.HOLD
    assert made.reason == "waiting for 25 % to be applied; observed 10 % of 412 requests"


def test_a_weight_seen_applied_is_recorded_and_the_analysis_window_starts_then():
    status = progressing(25)
    made = decide(status, Pending(Observation(103.0, 309.0, "1m")))
    assert made.action is Action.APPLIED
    assert made.status["applied"] == {"weight": 25, "time": "2026-12-01T12:00:00Z", "observed": 0.25,
                                      "requests": 412}
    assert decision.committed_change(status, made.status)
    # the check is due one interval after the weight was seen applied, not after the step
    assert not decision.check_due(ROLLOUT, made.status, NOW + timedelta(seconds=59))
    assert decision.check_due(ROLLOUT, made.status, NOW + timedelta(seconds=60))
    passed = Check(Verdict.PASS, {"requests": 100.0}, "ok")
    later = NOW + timedelta(seconds=60)
    step = decide(made.status, Pending(Observation(1.0, 1.0)), passed, now=later)
    assert step.action is Action.STEP and step.status["canaryWeight"] == 50
    assert "applied" not in step.status  # the next weight waits anew
    assert decide(step.status, Pending(Observation(25.0, 75.0)), passed, now=later).action is Action.HOLD


def test_past_apply_timeout_the_rollout_pauses_naming_the_commit_and_what_to_look_at():
    status = progressing(25, stepped=NOW - timedelta(minutes=11))
    pending = Pending(Observation(41.2, 370.8, "1m"), Sync(False, "the Argo CD Application ratings-dev",
                                                           "applied 0123456789ab, not yet abcdefabcdef"),
                      commit="abcdefabcdef0123456789abcdefabcdef012345")
    made = decide(status, pending)
    assert made.action is Action.PAUSE and made.status["phase"] == "Paused"
    assert "commit abcdefabcdef" in made.reason and "look at the Argo CD Application ratings-dev" in made.reason
    assert "applyTimeout 10m" in made.reason and "observed 10 % of 412 requests" in made.reason


def test_the_sync_source_denies_what_the_traffic_seems_to_show():
    pending = Pending(Observation(25.0, 75.0), Sync(False, "the Flux Kustomization flux-system/apps", "applied x"))
    made = decide(progressing(25), pending)
    assert made.action is Action.HOLD and "the Flux Kustomization flux-system/apps: applied x" in made.reason


def test_policy_time_counts_a_synced_commit_as_applied():
    made = decide(progressing(25), Pending(None, Sync(True, "the Argo CD Application a", "applied abc")))
    assert made.action is Action.APPLIED and made.status["applied"] == {"weight": 25, "time": "2026-12-01T12:00:00Z"}
    assert decide(progressing(25), Pending(None, Sync(None, "the Argo CD Application a", "HTTP 500"))).action \
        is Action.HOLD


def test_without_a_way_to_see_it_the_weight_counts_from_its_commit():
    status = progressing(25, stepped=NOW - timedelta(minutes=2))
    check = Check(Verdict.PASS, {}, "policy time")
    assert decide(status, None, check).action is Action.STEP


def test_the_band_narrows_as_traffic_grows():
    assert applied.tolerance(0.25, 100) > applied.tolerance(0.25, 10_000) > applied.EPSILON
    assert applied.seen(25, Observation(30.0, 70.0)) and not applied.seen(25, Observation(3000.0, 7000.0))
    assert not applied.seen(25, Observation(2.0, 6.0))  # fewer than MIN_REQUESTS: no evidence


@pytest.mark.parametrize("weight, n", [(10, 100), (25, 412), (50, 1000), (90, 300)])
def test_the_false_alarm_rate_is_at_most_the_documented_one_in_a_thousand(weight, n):
    """Exact binomial: the chance that an applied weight is not seen applied (docs/rollouts.md)."""
    w = weight / 100
    miss = sum(math.comb(n, k) * w ** k * (1 - w) ** (n - k) for k in range(n + 1)
               if not applied.seen(weight, Observation(float(k), float(n - k))))
    assert miss <= 0.002


# --- the rule, as properties ---------------------------------------------------------------

statuses = st.builds(
    lambda weight, ago, record, seen_ago, failed: progressing(
        weight, stepped=NOW - timedelta(seconds=ago), failedChecks=failed,
        **({"applied": {"weight": record, "time": decision.format_time(NOW - timedelta(seconds=seen_ago))}}
           if record is not None else {})),
    st.sampled_from(ROLLOUT.steps), st.integers(0, 3600), st.one_of(st.none(), st.sampled_from(ROLLOUT.steps)),
    st.integers(0, 3600), st.integers(0, 1))
observations = st.one_of(st.none(), st.builds(Observation, st.one_of(st.none(), st.floats(0, 1e5)),
                                              st.one_of(st.none(), st.floats(0, 1e5))))
syncs = st.one_of(st.none(), st.builds(Sync, st.sampled_from([True, False, None]), st.just("the Argo CD Application a")))
checks = st.one_of(st.none(), st.builds(Check, st.sampled_from(list(Verdict)), st.just({"requests": 500.0}),
                                        st.just("r")))


@settings(max_examples=400, deadline=None)
@given(statuses, observations, syncs, checks, st.booleans())
def test_never_a_step_on_a_weight_not_seen_applied(status, observation, sync, check, visible):
    pending = Pending(observation, sync) if visible else None
    made = decide(status, pending, check)
    counted = made.action in (Action.STEP, Action.SUCCEED, Action.FAIL_COUNT) or (
        made.action is Action.ROLLBACK and check is not None and check.verdict is Verdict.FAIL)
    if counted and pending is not None:
        assert applied.is_applied(status)
    if made.action is Action.APPLIED:
        assert made.status["applied"]["weight"] == status["canaryWeight"] and applied.is_applied(made.status)
        assert not (sync is not None and sync.synced is False)
    if made.action not in (Action.APPLIED, Action.PAUSE):
        assert made.status.get("applied") in (None, status.get("applied")) or \
            made.status["applied"]["weight"] == made.status["canaryWeight"]


def test_history_tells_when_each_weight_was_seen_applied():
    seen = {"weight": 10, "time": "2026-12-01T12:00:40Z", "observed": 0.098, "requests": 600}
    revisions = [progressing(10, stepped=NOW), progressing(10, stepped=NOW, applied=seen),
                 progressing(25, stepped=NOW + timedelta(minutes=2), lastCheck={
                     "time": "2026-12-01T12:02:00Z", "verdict": "pass"})]
    [timeline] = history.timelines(
        history.Revision(f"{i:040x}", "meshgen-bot", "bot@x", NOW + timedelta(minutes=i), "s", "dev", "ratings", st)
        for i, st in enumerate(revisions))
    assert [e.kind for e in timeline.events] == ["start", "applied", "step"]
    assert timeline.events[1].applied == seen and timeline.events[1].weight == 10
    assert timeline.to_json()["events"][1]["applied"]["observed"] == 0.098


# --- Argo CD and Flux, as a local server serving their JSON ---------------------------------


class Controller:
    """A local HTTP server answering like Argo CD's API and the Kubernetes API for Flux."""

    def __init__(self) -> None:
        self.revision = "0" * 40
        self.requests: list[dict] = []
        self.status = 200
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization")})
                if self.path.startswith("/api/v1/applications/"):
                    body = {"metadata": {"name": self.path.split("/")[-1].split("?")[0]},
                            "status": {"sync": {"status": "OutOfSync", "revision": server.revision},
                                       "operationState": {"phase": "Running", "message": "waiting for healthy state"}}}
                elif "/kustomizations/" in self.path:
                    body = {"kind": "Kustomization", "status": {
                        "lastAppliedRevision": f"main@sha1:{server.revision}",
                        "conditions": [{"type": "Ready", "status": "False", "reason": "BuildFailed",
                                        "message": "kustomize build failed"}]}}
                else:
                    body = {"kind": "Status", "code": 404}
                data = json.dumps(body).encode()
                self.send_response(server.status if "kind" not in body or body["kind"] != "Status" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def controller():
    server = Controller()
    yield server
    server.close()


def test_argocd_application_not_yet_synced_then_synced(controller):
    spec = {"sync": {"argocd": {"url": controller.url, "application": "{app}-dev", "tokenEnv": "T_ARGO"}}}
    commit = "ab" * 20
    never = lambda a, b: False  # noqa: E731
    answer = bot_sync.ask(spec, "ratings", commit, never, environ={"T_ARGO": "s3cret-token"})
    assert answer.synced is False and answer.source == "the Argo CD Application ratings-dev"
    assert answer.detail == ("applied 000000000000, not yet abababababab; OutOfSync; sync operation Running: "
                             "waiting for healthy state")
    assert controller.requests[-1] == {"path": "/api/v1/applications/ratings-dev", "auth": "Bearer s3cret-token"}
    assert "s3cret" not in repr(answer)
    controller.revision = commit
    assert bot_sync.ask(spec, "ratings", commit, never, environ={"T_ARGO": "s3cret-token"}).synced is True
    controller.revision = "cd" * 20  # a later commit that contains it
    later = bot_sync.ask(spec, "ratings", commit, lambda a, b: (a, b) == (commit, "cd" * 20), environ={})
    assert later.synced is True and "which contains abababababab" in later.detail


def test_flux_kustomization_through_the_kubernetes_api(controller):
    spec = {"sync": {"flux": {"url": controller.url, "kustomization": "apps"}}}
    answer = bot_sync.ask(spec, "ratings", "ab" * 20, lambda a, b: False, environ={"MESHGEN_KUBE_TOKEN": "k8s-token"})
    assert controller.requests[-1] == {
        "path": "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps",
        "auth": "Bearer k8s-token"}
    assert answer.synced is False and answer.source == "the Flux Kustomization flux-system/apps"
    assert "Ready False: BuildFailed, kustomize build failed" in answer.detail


def test_a_refusing_or_absent_controller_is_no_evidence_and_says_why(controller):
    controller.status = 401
    spec = {"sync": {"argocd": {"url": controller.url, "application": "a"}}}
    answer = bot_sync.ask(spec, "ratings", "ab" * 20, lambda a, b: False, environ={})
    assert answer.synced is None and answer.detail == "refused the bot's request (HTTP 401; $ARGOCD_AUTH_TOKEN is not set)"
    gone = {"sync": {"argocd": {"url": "http://127.0.0.1:9", "application": "a"}}}
    assert bot_sync.ask(gone, "ratings", "ab" * 20, lambda a, b: False, environ={}).synced is None


# --- the bot end to end ----------------------------------------------------------------------

APP = """\
apiVersion: meshgen.io/v1alpha1
kind: App
metadata: {{name: ratings, namespace: {namespace}}}
spec:
  service: {{host: ratings, port: 80}}
  versions:
    v1: {{labels: {{version: v1}}}}
    v2: {{labels: {{version: v2}}}}
  routes:
    - name: default
      to: v1
  rollout: {rollout}
"""


@pytest.fixture
def mesh_repo(tmp_path, git_remote, prometheus, mesh_traffic):
    made: list[FakeMesh] = []

    def make(namespace: str, sync: str = "", apps: tuple[str, ...] = ("ratings",), **analysis):
        block = {"stable": "v1", "canary": "v2", "route": "default", "steps": [20, 100], "interval": "2s",
                 "analysis": {"minRequests": 10, **analysis}}
        env = (f"apiVersion: meshgen.io/v1alpha1\nkind: Environment\nmetadata: {{name: dev}}\n"
               f"spec:\n  prometheus: {{url: {prometheus.url}}}\n{sync}")
        files = {f"apps/{app}.yaml": APP.replace("ratings", app).format(namespace=namespace, rollout=json.dumps(block))
                 for app in apps}
        tree = build_file_tree(tmp_path / "bot", {**files, "environments/dev.yaml": env})
        output.write_rendering(tree, render.render_repo(tree))
        remote, work = git_remote(tree)
        mesh = FakeMesh(mesh_traffic, remote)
        made.append(mesh)
        for app in apps:
            mesh.follow("dev", app, namespace, app, "v1", "v2", 60)
        return remote, work, mesh

    yield make
    for mesh in made:
        mesh.close()


@pytest.mark.prometheus
def test_a_weight_the_mesh_never_applies_holds_then_pauses_by_a_commit_naming_it(mesh_repo):
    remote, work, mesh = mesh_repo("applied-stuck", applyTimeout="4s")
    mesh.freeze("dev", "ratings")  # the controller never syncs
    started = bot.tick(work, push=True)
    assert [o.decision.action.value for o in started.commits] == ["start"]
    start_commit = git(remote, "rev-parse", "main").strip()

    def held():
        report = bot.tick(work, push=True)
        reason = report.outcomes[0].decision.reason
        return reason if reason.startswith("waiting for 20 % to be applied; observed 0 % of ") else None

    reason = wait_until(held, 20, what="a hold on the unapplied weight")
    assert reason.endswith(" requests")
    reports = []
    wait_until(lambda: reports.append(bot.tick(work, push=True)) or reports[-1].commits, 20, what="the pause")
    [paused] = reports[-1].commits
    assert paused.decision.action is Action.PAUSE
    subject, body = git(remote, "log", "-1", "--format=%s%n%b", "main").split("\n", 1)
    assert subject == "rollout ratings (dev): pause canary v2 at 20 %: not seen applied"
    assert f"commit {start_commit[:12]}" in body and "applyTimeout 4s" in body
    assert "look at the Argo CD Application or Flux Kustomization" in body
    status = yaml.safe_load(git(remote, "show", "main:status/dev/ratings.yaml"))["status"]
    assert status["phase"] == "Paused" and "applied" not in status


@pytest.mark.prometheus
def test_an_argocd_application_behind_the_commit_holds_though_traffic_matches(mesh_repo, controller, monkeypatch):
    monkeypatch.setenv("E2E_ARGO_TOKEN", "token-never-shown")
    sync = f"  sync: {{argocd: {{url: {controller.url}, application: '{{app}}-dev', tokenEnv: E2E_ARGO_TOKEN}}}}\n"
    remote, work, mesh = mesh_repo("applied-argo", sync=sync)
    first = git(remote, "rev-parse", "main").strip()
    controller.revision = first  # Argo CD synced the config before the rollout started
    bot.tick(work, push=True)
    report = bot.tick(work, push=True)
    reason = report.outcomes[0].decision.reason
    assert reason.startswith("waiting for 20 % to be applied; ")
    start = git(remote, "rev-parse", "main").strip()
    assert (f"the Argo CD Application ratings-dev: applied {first[:12]}, not yet {start[:12]}; OutOfSync; "
            "sync operation Running: waiting for healthy state") in reason
    assert "token-never-shown" not in reason and report.commits == []
    controller.revision = git(remote, "rev-parse", "main").strip()  # Argo CD syncs the start commit
    reports = []
    wait_until(lambda: reports.append(bot.tick(work, push=True)) or reports[-1].commits, 20, what="applied")
    assert [o.decision.action.value for o in reports[-1].commits] == ["applied"]
    subject = git(remote, "log", "-1", "--format=%s", "main").strip()
    assert subject == "rollout ratings (dev): canary v2 at 20 % seen applied"
    record = yaml.safe_load(git(remote, "show", "main:status/dev/ratings.yaml"))["status"]["applied"]
    assert record["weight"] == 20 and 0 < record["observed"] < 1 and record["requests"] > 0


@pytest.mark.prometheus
def test_one_query_per_environment_sees_the_split_of_every_app(mesh_repo):
    apps = ("ratings", "reviews", "details")
    remote, work, mesh = mesh_repo("applied-many", apps=apps)
    for app in apps:
        mesh.freeze("dev", app)
    assert len(bot.tick(work, push=True).commits) == 3
    report = bot.tick(work, push=True)
    assert report.queries == 1
    assert [o.decision.action.value for o in report.outcomes] == ["hold"] * 3
    assert all(o.decision.reason.startswith("waiting for 20 % to be applied") for o in report.outcomes)


def test_an_applied_time_that_is_no_date_is_a_placed_error(tmp_path):
    from generator.errors import SpecErrors
    from generator.spec import status as status_files

    st = progressing(25, applied={"weight": 25, "time": "2026-02-30T10:00:00Z"})
    (tmp_path / "status" / "dev").mkdir(parents=True)
    (tmp_path / "status" / "dev" / "ratings.yaml").write_bytes(status_files.dump_status("dev", "ratings", st))
    with pytest.raises(SpecErrors) as caught:
        status_files.load_status(tmp_path, "status/dev/ratings.yaml")
    [error] = caught.value.errors
    assert "status.applied.time: '2026-02-30T10:00:00Z' is not a time" in str(error.format())
    assert error.place.path == "status/dev/ratings.yaml" and error.place.line > 1
