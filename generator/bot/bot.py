"""The rollout bot's tick: the imperative shell around :func:`generator.rollout.decision.decide`.

One tick (DESIGN §6), for each environment and each app with a ``rollout`` block:

0. take the clone's tick lock (:mod:`generator.bot.lock`): wait for a live tick of the same
   clone, or, after a killed one, remove the git lock files it left;
1. put bot-owned paths back to ``HEAD`` if a previous tick died between writing and
   committing (:meth:`generator.bot.vcs.Workspace.restore`), and with ``push`` move onto the
   tracked branch's head (:meth:`~generator.bot.vcs.Workspace.sync`);
2. read ``status/<env>/<app>.yaml``; for the apps whose check is due, ask the environment's
   Prometheus each distinct query once (:func:`generator.rollout.metrics.plan`), side by side
   (:data:`MAX_CONCURRENT_QUERIES` at once) -- the built-in queries are grouped by service and
   version, so their number does not grow with the apps;
3. decide (pure), and for each app whose phase, weight, step or failed-check count changed:
   write its status file, re-render, write its rendered files (each write atomic), and
   commit them together with a message naming the app, the environment, old -> new weight
   and the metric values that decided it;
4. with ``push``, push; a push rejected because the branch moved drops the tick's commits,
   moves onto the new head and decides again (bounded), so two bots never both step;
5. after the commits are pushed (or made, without ``push``), post Slack notices.

A Prometheus that fails stops its environment before anything is written for it (the tick
then exits 3); a hold or a passing check inside an interval writes nothing at all.
"""

from __future__ import annotations

import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from generator.bot import PROMETHEUS_URL_ENV  # noqa: F401 - bot.PROMETHEUS_URL_ENV, as before
from generator.bot import gates as bot_gates
from generator.bot import lock, notify, vcs
from generator.bot import sync as bot_sync
from generator.bot.deadline import GIT_NETWORK_SECONDS, Deadline
from generator.bot.prometheus import Prometheus
from generator.errors import (
    CheckFailed,
    DeadlineExceeded,
    DiskFull,
    DiskFullOutside,
    GitError,
    MeshgenError,
    PrometheusError,
    SpecError,
    SpecErrors,
    UsageError,
)
from generator.render import output, timelimit
from generator.rollout import applied, decision, gates, groups, metrics, promotion, windows
from generator.rollout.decision import Action, Check, Decision, Rollout
from generator.spec import paths as repo_paths
from generator.spec import status
from generator.spec.config import EffectiveApp, Repo, load_repo
from generator import targets

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 5
#: Seconds the bot's clock may differ from Prometheus's before an environment's checks are refused.
MAX_CLOCK_SKEW = 10.0
#: Queries of one environment asked at once (Prometheus's own ``--query.max-concurrency`` is 20).
MAX_CONCURRENT_QUERIES = 4


def utcnow() -> datetime:
    """The tick's clock: UTC, whole seconds (the resolution of the status file)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


@dataclass
class Outcome:
    """What a tick did to one app in one environment.

    Attributes:
        env, app: which rollout.
        old: the status before (``None`` when there was none).
        decision: the decision.
        committed: the commit's SHA when the change was committed, else ``None``.
        gate_results: what the rollout's gates answered (written into the commit).
        item: the rollout it is about (for the post-rollout gates).
    """

    env: str
    app: str
    old: dict[str, Any] | None
    decision: Decision
    committed: str | None = None
    failure_limit: int | None = None
    webhook_url_env: str | None = None
    gate_results: list[gates.GateResult] = field(default_factory=list)
    item: "_Rollout | None" = None

    @property
    def changed(self) -> bool:
        return (decision.committed_change(self.old, self.decision.status)
                and self.decision.action not in (Action.NOTHING, Action.WAIT))

    def line(self) -> str:
        """One line for the terminal: where, then what happened in words (the reason says it)."""
        return f"{self.env}/{self.app}: {self.decision.reason}"


@dataclass
class TickReport:
    """The result of one tick.

    Attributes:
        outcomes: one per app with a rollout block, in environment then app order.
        queries: PromQL queries sent (retries included).
        query_seconds, render_seconds, commit_seconds, seconds: time spent asking
            Prometheus, re-rendering, writing and committing (git), and in all. The render's
            checks of an environment's specs run while its queries are out, so those seconds
            are in both ``query_seconds`` and ``render_seconds``.
        attempts: pushes tried (1 without contention).
        failed_envs: environments skipped because their Prometheus failed, with the error.
        problems: placed problems of status files found while deciding (a time in the
            future); their rollouts wait, the others go on, and the CLI exits 1.
    """

    outcomes: list[Outcome] = field(default_factory=list)
    queries: int = 0
    query_seconds: float = 0.0
    render_seconds: float = 0.0
    commit_seconds: float = 0.0
    seconds: float = 0.0
    attempts: int = 0
    failed_envs: dict[str, PrometheusError] = field(default_factory=dict)
    problems: list[SpecError] = field(default_factory=list)

    @property
    def commits(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.committed]


# --- messages -----------------------------------------------------------------------------


def commit_message(env: str, app: str, old: Mapping[str, Any] | None, new: Decision,
                   failure_limit: int | None = None, gate_results: Sequence[gates.GateResult] = ()) -> str:
    """The commit message of one rollout change: a subject naming app, environment and
    old -> new canary weight (``rollback`` and why for a rollback), and a body with the
    metric values and the gates' answers that decided it."""
    st = new.status
    before = int((old or {}).get("canaryWeight", 0)) if old and old.get("canary") == st.get("canary") else 0
    after = int(st.get("canaryWeight", 0))
    canary = st.get("canary")
    where = f"{app} ({env})"
    action = new.action
    check = st.get("lastCheck") or {}
    if action is Action.START:
        subject = f"rollout {where}: start canary {canary}, {before} % -> {after} %"
    elif action is Action.STEP:
        subject = f"rollout {where}: step canary {canary}, {before} % -> {after} %"
    elif action is Action.SUCCEED:
        subject = f"rollout {where}: canary {canary} succeeded at {after} %"
    elif action is Action.FAIL_COUNT:
        limit = f" of {failure_limit}" if failure_limit else ""
        subject = (f"rollout {where}: failed check {st.get('failedChecks')}{limit}, canary {canary} "
                   f"stays at {after} %: {check.get('reason', '')}")
    elif action is Action.ROLLBACK:
        subject = f"rollout {where}: rollback canary {canary}, {before} % -> {after} %: {check.get('reason', '')}"
    elif action is Action.ABORT:
        subject = f"rollout {where}: rollback canary {canary}, {before} % -> {after} %: aborted by hand"
    elif action is Action.PROMOTE:
        subject = f"rollout {where}: promote canary {canary} by hand, {before} % -> {after} %"
    elif action is Action.PAUSE:
        unapplied = ": not seen applied" if (old or {}).get("phase") == decision.PROGRESSING \
            and not applied.is_applied(old) and str(st.get("message", "")).startswith("paused: ") else ""
        subject = f"rollout {where}: pause canary {canary} at {after} %{unapplied}"
    elif action is Action.RESUME:
        subject = f"rollout {where}: resume canary {canary}, {before} % -> {after} %"
    elif action is Action.APPROVE:
        subject = f"rollout {where}: approve canary {canary} ({st.get('stable')} -> {canary})"
    elif action is Action.APPLIED:
        subject = f"rollout {where}: canary {canary} at {after} % seen applied"
    else:
        subject = f"rollout {where}: {action.value}, {before} % -> {after} %"
    body = [new.reason]
    if check and action in (Action.STEP, Action.SUCCEED, Action.FAIL_COUNT, Action.ROLLBACK):
        values = decision.format_metrics(check.get("metrics") or {})
        body.append(f"Check at {check.get('time')}: {check.get('verdict')}"
                    f"{': ' + values if values else ''}")
        for name, result in (check.get("dryRun") or {}).items():
            body.append(f"Dry run {name}: {result.get('verdict')}, {result.get('reason', '')}"
                        " (not part of the verdict)")
    body.extend(result.line() for result in gate_results)
    index = st.get("stepIndex")
    step = f"step {index + 1}, " if isinstance(index, int) and index >= 0 else ""  # none before the first, after a rollback
    body.append(f"Status: {st.get('phase')}, {st.get('stable')} {100 - after} % / {canary} {after} %, "
                f"{step}failed checks {st.get('failedChecks')}")
    return subject.rstrip(": ") + "\n\n" + "\n".join(body) + "\n"


# --- reading the repository ---------------------------------------------------------------


@dataclass
class _Rollout:
    env: str
    app: str
    effective: EffectiveApp
    rollout: Rollout
    status_path: str
    status: dict[str, Any] | None
    pipeline: promotion.Pipeline | None = None
    previous_path: str | None = None
    read: Callable[[str], dict[str, Any] | None] | None = None
    gates: tuple[gates.Gate, ...] = ()
    status_of: Callable[[str], dict[str, Any] | None] | None = None  # this app's status in an environment
    group: str | None = None  # rollout.group
    apply_timeout: tuple[float, str] = (600.0, applied.DEFAULT_APPLY_TIMEOUT)

    @property
    def previous_status(self) -> dict[str, Any] | None:
        """The status of the environment before this one in the pipeline (read when asked)."""
        return self.read(self.previous_path) if self.read and self.previous_path else None

    def statuses(self) -> dict[str, dict[str, Any] | None] | None:
        """This app's status in each environment of its pipeline (``None`` without one)."""
        if self.pipeline is None or self.status_of is None:
            return None
        return {env: (self.status if env == self.env else self.status_of(env)) for env in self.pipeline.order}

    def admission(self, now: datetime, window: windows.State = windows.OPEN) -> promotion.Admission | None:
        """The pipeline's word on starting this pair at ``now``, closed too while the
        environment's promotion ``window`` is; ``None`` once it has started."""
        if not promotion.not_started(self.status, self.rollout.stable, self.rollout.canary):
            return None
        admitted = promotion.admit(self.pipeline, self.app, self.env, self.rollout.stable, self.rollout.canary,
                                   self.previous_status, self.status, now, statuses=self.statuses())
        if window.open:
            return admitted
        closed = f"{self.env} is {window.reason}"
        return admitted._replace(open=False, reason=f"{admitted.reason}; {closed}" if admitted.reason
                                 and not admitted.open else closed)


def _rollouts(repo: Repo, envs: Sequence[str] | None, apps: Sequence[str] | None) -> list[_Rollout]:
    names = list(repo.environments)
    unknown = [e for e in envs or () if e not in repo.environments]
    unknown_apps = [a for a in apps or () if a not in repo.apps]
    if unknown or unknown_apps:
        what = [f"environment {e!r}" for e in unknown] + [f"app {a!r}" for a in unknown_apps]
        raise UsageError(f"unknown {', '.join(what)}")
    found, errors = [], []
    pipelines = promotion.pipelines(repo)
    read: dict[str, dict[str, Any] | None] = {}

    def load(rel: str) -> dict[str, Any] | None:  # each status file once, however many read it
        if rel not in read:
            read[rel] = status.load_status(repo.root, rel)
        return read[rel]
    for env in names:
        if envs and env not in envs:
            continue
        for app in repo.apps:
            if apps and app not in apps:
                continue
            effective = repo.effective_app(app, env)
            spec = (effective.data.get("spec") or {}) if isinstance(effective.data, dict) else {}
            block = spec.get("rollout") if isinstance(spec, dict) else None
            if not isinstance(block, dict):
                continue
            try:
                rollout = Rollout.from_spec(block)
                gated = gates.gates_of(block)
                timeout = applied.apply_timeout(block)
            except (ValueError, KeyError) as e:
                errors.append(SpecError(f"rollout: {e}", place=effective.place("spec", "rollout")))
                continue
            rel = status.status_path(repo.rel("status"), env, app)
            pipeline = pipelines.get(app)
            before = pipeline.previous_wave(env) if pipeline else ()
            group = block.get("group")
            found.append(_Rollout(env, app, effective, rollout, rel, load(rel), pipeline,
                                  status.status_path(repo.rel("status"), before[0], app)
                                  if len(before) == 1 else None,
                                  load, gated,
                                  lambda e, app=app: load(status.status_path(repo.rel("status"), e, app)),
                                  str(group) if isinstance(group, str) and group else None, timeout))
    SpecErrors.collect(errors)
    return found


def prometheus_url(repo: Repo, env: str, override: str | None) -> str:
    """The Prometheus of ``env``: ``override``, else ``$MESHGEN_PROMETHEUS_URL``, else the
    environment's ``spec.prometheus.url``.

    Raises:
        SpecErrors: none of them is set.
    """
    url = override or os.environ.get(PROMETHEUS_URL_ENV)
    if url:
        return url
    doc = repo.environments[env]
    url = ((doc.data.get("spec") or {}).get("prometheus") or {}).get("url")
    if not url:
        raise SpecErrors([SpecError(f"environment {env!r} has rollouts but no spec.prometheus.url",
                                    place=doc.place("spec"), hint=f"set it, or {PROMETHEUS_URL_ENV}")])
    return url


def _checks(repo: Repo, env: str, due: list[_Rollout], now: datetime, url: str | None,
            report: TickReport, limit: Deadline | None = None,
            clock: Callable[[], datetime] = utcnow, watch: Sequence[_Rollout] = (),
            observed: dict[str, applied.Observation] | None = None,
            meanwhile: Callable[[str], None] | None = None) -> dict[str, Check]:
    """Ask Prometheus what the due apps of one environment need; each query once.

    ``watch``: apps whose weight waits to be seen applied; their observed split (the shared
    ``requests`` query over their interval) goes into ``observed``, by app.
    ``meanwhile(env)``: called while the queries are out, when some app's check is due (its
    status then changes and the tick renders: it checks the environment's specs for that render
    meanwhile; a tick that only watches weights wait to be applied renders nothing).
    """
    out_target = targets.of_environment(repo.environments[env].data.get("spec"))

    def target_of(item: _Rollout) -> metrics.Target:  # the series the environment's target reports
        return metrics.target_of(item.app, env, item.effective.data, item.rollout,
                                 out_target.series_service, out_target.series_reporter)

    plans: dict[str, tuple[_Rollout, metrics.Target, metrics.Plan]] = {}
    errors = []
    targets_of = {item.app: target_of(item) for item in [*due, *watch]}
    scope = metrics.Scope.of((target.namespace for target in targets_of.values()),  # what the queries ask about
                             [*(v for i in due for v in metrics.versions_read(i.rollout, targets_of[i.app])),
                              *(v for i in watch for v in (targets_of[i.app].canary, targets_of[i.app].stable))])
    for item in due:
        target = targets_of[item.app]
        custom = any(isinstance(m, Mapping) and m.get("query") is not None for m in item.rollout.metrics)
        try:  # a custom query is a template: bounded in time while it renders
            with timelimit.time_limit(what=f"rendering the queries of app {item.app!r}") if custom else nullcontext():
                plans[item.app] = (item, target, metrics.plan(item.rollout, target, scope))
        except metrics.MetricQueryError as e:
            errors.append(SpecError(str(e), place=item.effective.place(
                "spec", "rollout", "analysis", "metrics", e.index, "query")))
        except ValueError as e:
            errors.append(SpecError(f"rollout: {e}", place=item.effective.place("spec", "rollout", "analysis")))
    SpecErrors.collect(errors)
    watched: dict[str, tuple[metrics.Target, str, str]] = {}  # app: (target, its requests query, window)
    for item in watch:
        target, window = targets_of[item.app], metrics.promql_duration(item.rollout.interval)
        watched[item.app] = (target, metrics.builtin_query(metrics.REQUESTS, window, target.reporter, scope),
                             window)
    queries = list(dict.fromkeys([q for _, _, plan in plans.values() for q in plan.queries]
                                 + [q for _, q, _ in watched.values()]))
    results: dict[str, metrics.Vector] = {}
    if queries:
        started = time.perf_counter()
        client = Prometheus.from_environment(prometheus_url(repo, env, url), deadline=limit, clock=clock)
        try:  # side by side: Prometheus evaluates each on a core of its own, the answers parse meanwhile
            with ThreadPoolExecutor(min(len(queries), MAX_CONCURRENT_QUERIES), "meshgen-query") as pool:
                answers = pool.map(lambda q: metrics.Vector(client.query(q, now)), queries)
                if meanwhile is not None and due:
                    meanwhile(env)
                for promql, vector in zip(queries, answers):
                    results[promql] = vector
        finally:
            report.queries += client.queries
            report.query_seconds += time.perf_counter() - started
            client.close()
        if client.skew is not None and abs(client.skew) > MAX_CLOCK_SKEW:
            ahead = "ahead of" if client.skew > 0 else "behind"
            raise PrometheusError(f"the bot's clock is {abs(client.skew):.0f} s {ahead} Prometheus at {client.shown} "
                                  f"(its Date header): windows ending at the bot's time would show traffic "
                                  f"that is not there yet or long gone; no check was made (hint: sync the "
                                  f"clock with NTP)")
    for app, (target, promql, window) in watched.items():
        if observed is not None and promql in results:
            found = results[promql]
            observed[app] = applied.Observation(metrics.pick_series(found, target, target.canary).value,
                                                metrics.pick_series(found, target, target.stable).value, window)
    return {app: metrics.evaluate(item.rollout, target, plan, results) for app, (item, target, plan) in plans.items()}


def future_times(root: Path, rel: str, st: Mapping[str, Any] | None, now: datetime) -> list[SpecError]:
    """Placed errors for times of a status file that lie in the future (more than
    :data:`MAX_CLOCK_SKEW` past ``now``): such a rollout would wait, silently, until then."""
    if not st:
        return []
    found = []
    for keys in (("lastStepTime",), ("lastCheck", "time"), ("applied", "time")):
        value: Any = st
        for key in keys:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is None:
            continue
        try:
            moment = decision.parse_time(value)
        except ValueError:
            continue  # the status schema reports it
        if (moment - now).total_seconds() > MAX_CLOCK_SKEW:
            found.append(SpecError(
                f"{'.'.join(keys)} {value} is in the future (the bot's clock says {decision.format_time(now)}); "
                f"the rollout would wait until then, so the bot leaves it alone",
                place=status.place_of(root, rel, "status", *keys),
                hint="fix the time in the status file (or the clock that wrote it), or `meshgen rollout abort`"))
    return found


def impossible(root: Path, item: "_Rollout") -> list[SpecError]:
    """Placed errors for a status that no tick or command writes, edited by hand (see
    :func:`generator.rollout.decision.contradictions`): the bot refuses to act on it."""
    return status.placed(root, item.status_path, decision.contradictions(item.rollout, item.status, item.app, item.env))


# --- the tick -----------------------------------------------------------------------------


@contextmanager
def _tick_lock(root: Path, wait: float | None, dry_run: bool = False) -> Iterator[lock.TickLock | None]:
    """The clone's tick lock held around a tick (none for a dry run, which writes nothing).

    Raises:
        UsageError: a merge, rebase, cherry-pick, revert, bisect or ``git am`` is in progress
            in the clone (:func:`generator.bot.vcs.refuse_in_progress`), exit 2.
    """
    if dry_run:
        yield None
        return
    with lock.TickLock(vcs.git_dir(root), wait) as held:
        vcs.refuse_in_progress(root)  # before reading a spec that may hold conflict markers
        yield held


def _recovered(held: lock.TickLock | None) -> None:
    """Say what was cleaned up after a tick that was killed."""
    if held and held.removed:
        log.warning("finishing an interrupted tick: removed stale git lock(s) %s",
                    ", ".join(f".git/{p}" if held.git_dir.name == ".git" else p for p in held.removed))


def _ask_gates(item: _Rollout, due: Sequence[gates.Gate], current: Mapping[str, Any] | None,
               dry_run: bool = False, limit: Deadline | None = None) -> list[gates.GateResult]:
    """POST each due gate its payload (a dry run asks none and lets them pass), all within
    the tick's deadline (:class:`DeadlineExceeded` once it passes)."""
    if dry_run:
        return [gates.GateResult(g, True, "not asked in a dry run") for g in due]
    namespace = str((item.effective.data.get("metadata") or {}).get("namespace", ""))
    return bot_gates.call_all(due, lambda g: gates.payload(g, item.app, namespace, item.env, item.rollout, current),
                              deadline=limit)


def _decide_all(repo: Repo, envs: Sequence[str] | None, apps: Sequence[str] | None, now: datetime,
                url: str | None, report: TickReport, dry_run: bool = False, limit: Deadline | None = None,
                clock: Callable[[], datetime] = utcnow, meanwhile: Callable[[str], None] | None = None
                ) -> list[Outcome]:
    items = _rollouts(repo, envs, apps)
    states = windows.states(promotion.windows_of(repo), now)
    outcomes: list[Outcome] = []
    by_env: dict[str, list[_Rollout]] = {}
    for item in items:
        by_env.setdefault(item.env, []).append(item)
    for env, group in by_env.items():
        future = {}  # and impossible: either way the rollout is left alone, the others go on
        for item in group:
            found = future_times(repo.root, item.status_path, item.status, now) + impossible(repo.root, item)
            if found:
                future[item.app] = found
                report.problems.extend(found)
        env_spec = (repo.environments[env].data.get("spec") or {}) if env in repo.environments else {}
        synced = bot_sync.configured(env_spec)
        waits = {i.app for i in group if i.app not in future
                 and applied.waiting(i.rollout, i.status, i.rollout.policy != "time" or synced)}
        due = [i for i in group if i.app not in future and i.app not in waits
               and decision.check_due(i.rollout, i.status, now)]
        watch = [i for i in group if i.app in waits and i.rollout.policy != "time"]
        observed: dict[str, applied.Observation] = {}
        try:
            checks = _checks(repo, env, due, now, url, report, limit, clock, watch, observed, meanwhile) \
                if due or watch else {}
        except PrometheusError as e:
            report.failed_envs[env] = e
            log.error("environment %s skipped: %s", env, e)
            continue
        window = states.get(env, windows.OPEN)
        decided: list[tuple[_Rollout, Decision, list[gates.GateResult]]] = []
        for item in group:
            if item.app in future:
                continue
            admission = item.admission(now, window)
            pending = None
            if item.app in waits:  # the weight's commit, where it is asked for or named (one git log each)
                commit = _weight_commit(repo.root, item.status_path) if synced or applied.timed_out(
                    item.status or {}, now, item.apply_timeout[0]) else None
                pending = applied.Pending(
                    observed.get(item.app) if item.rollout.policy != "time" else None,
                    bot_sync.ask(env_spec, item.app, commit, lambda a, b: _is_ancestor(repo.root, a, b),
                                 timeout=_sync_budget(limit)) if synced else None,
                    commit, bot_sync.source_of(env_spec, item.app))
            asked = [] if pending else _ask_gates(
                item, gates.due(item.gates, item.rollout, item.status, now, admission), item.status, dry_run, limit)
            made = applied.decide(
                item.rollout, item.status, pending, now, *item.apply_timeout,
                rest=lambda item=item, admission=admission, asked=asked: gates.decide(
                    item.rollout, env, item.status, checks.get(item.app), now, admission, asked))
            decided.append((item, windows.gate(made, item.status, window, env), asked))
        decided = _as_groups(decided, now)
        for item, made, asked in decided:
            made = promotion.with_stop_note(made, item.pipeline, env)
            outcomes.append(Outcome(env, item.app, item.status, made, failure_limit=item.rollout.failure_limit,
                                    webhook_url_env=item.rollout.webhook_url_env, gate_results=asked, item=item))
    _with_waves(outcomes, now)
    return outcomes


def _sync_budget(limit: Deadline | None) -> float:
    """Seconds one question to Argo CD or Flux may take: its own bound, never past the tick's deadline."""
    if limit is None:
        return bot_sync.DEFAULT_TIMEOUT
    if limit.remaining() <= 0:
        raise limit.exceeded("before asking the environment's Argo CD or Flux whether a weight is applied")
    return min(bot_sync.DEFAULT_TIMEOUT, limit.remaining())


def _weight_commit(root: Path, rel: str) -> str | None:
    """The SHA of the last commit that changed the status file ``rel`` (the one that set the
    current weight, while it waits to be applied), or ``None`` outside git."""
    try:
        return vcs.git.Repo(root).git.log("-1", "--format=%H", "--", rel).strip() or None
    except Exception:  # GitPython raises several types; no commit is no evidence
        return None


def _is_ancestor(root: Path, older: str, newer: str) -> bool | None:
    """Whether ``older`` is ``newer`` or its ancestor; ``None`` when the clone lacks ``newer``."""
    try:
        repo = vcs.git.Repo(root)
        repo.commit(newer)
        return bool(repo.is_ancestor(older, newer))
    except Exception:  # unknown commit
        return None


def _as_groups(decided: list[tuple[_Rollout, Decision, list[gates.GateResult]]], now: datetime
               ) -> list[tuple[_Rollout, Decision, list[gates.GateResult]]]:
    """The decisions of one environment with its rollout groups' rules applied
    (:func:`generator.rollout.groups.combine`): members start, step and roll back together."""
    members: dict[str, dict[str, groups.Member]] = {}
    for item, made, _ in decided:
        if item.group:
            members.setdefault(item.group, {})[item.app] = groups.Member(item.rollout, item.status, made)
    combined = {(name, app): made for name, found in members.items()
                for app, made in groups.combine(name, found, now).items()}
    return [(item, combined.get((item.group or "", item.app), made), asked) for item, made, asked in decided]


def _with_waves(outcomes: list[Outcome], now: datetime) -> None:
    """With ``promotion.onFailure: rollback-wave``, roll back each wave member still on a
    canary that another member of its wave rolled back (before this tick or in it)."""
    latest = {(o.env, o.app): (o.decision.status if o.changed else o.old) for o in outcomes}
    for outcome in outcomes:
        item = outcome.item
        if item is None or item.pipeline is None or outcome.decision.action in groups.BACK:
            continue
        statuses = {env: latest[(env, outcome.app)] if (env, outcome.app) in latest else
                    (item.status_of(env) if item.status_of else None) for env in item.pipeline.wave(outcome.env)}
        current = outcome.decision.status if outcome.changed else (outcome.old or {})
        why = promotion.wave_failure(item.pipeline, outcome.env, item.rollout.stable, item.rollout.canary,
                                     current, statuses)
        if why:
            outcome.decision = promotion.with_stop_note(promotion.roll_back_with_wave(current, now, why),
                                                        item.pipeline, outcome.env)


def _write_and_commit(ws: vcs.Workspace, repo: Repo, outcomes: list[Outcome], identity: vcs.Identity | None,
                      before_commit: Callable[[], None] | None = None, report: TickReport | None = None,
                      limit: Deadline | None = None, prepared: _Prepared | None = None) -> None:
    """Write the status and rendered files of each changed outcome; commit each app apart
    (rendered by ``prepared``'s render when given: its environments may be checked already)."""
    from generator.render import shapes  # only when something changes

    changed = [o for o in outcomes if o.changed]
    if not changed:
        return
    for outcome in changed:  # the rollout ends: its post-rollout gates are told, their answers recorded
        if outcome.decision.action in gates.ENDING and outcome.item is not None:
            post = [g for g in outcome.item.gates if g.kind == gates.POST_ROLLOUT]
            outcome.gate_results = [r for r in outcome.gate_results if r.gate.kind != gates.POST_ROLLOUT] + \
                _ask_gates(outcome.item, post, outcome.decision.status, limit=limit)
    status_dir = repo.rel("status")
    # write nothing through a link or over an odd file (status/ and rendered/ are the bot's)
    SpecErrors.collect(repo_paths.output_problems(repo.root, status_dir)
                       + repo_paths.output_problems(repo.root, repo.rel("rendered")))
    rels = [status.status_path(status_dir, o.env, o.app) for o in changed]  # each outcome's status file
    dumps = shapes.Dumps(status.status_text)  # statuses alike (most of a tick's) are dumped once
    written = {rel: status.dump_status(o.env, o.app, o.decision.status, dumps.text) for rel, o in zip(rels, changed)}
    statuses_written = output.BackgroundWrite(repo.root, written, written, present=())  # while it renders
    started = time.perf_counter()
    try:  # only the changed apps, each with the status it is about to commit
        rendering = (prepared or _Prepared(repo)).apps().render(
            [(o.env, o.app) for o in changed], {rel: o.decision.status for rel, o in zip(rels, changed)})
    except MeshgenError:
        statuses_written.join()  # every status written before they are put back
        ws.restore()
        raise
    finally:
        statuses_written.join()  # (a second join, after the one above, returns at once)
    if report:
        report.render_seconds += time.perf_counter() - started
    files_of: dict[tuple[str, str], list[str]] = {}
    for obj in rendering.objects:
        files_of.setdefault((obj.env, obj.app), []).append(obj.path)
    for outcome in changed:
        _assert_consistent(ws, repo, outcome, rendering)
    commits, contents, rendered = [], dict(written), []
    for rel, outcome in zip(rels, changed):
        files = files_of.get((outcome.env, outcome.app), [])  # every file of the app: what was rendered
        rendered += files
        contents.update((path, rendering.files[path]) for path in files)
        message = commit_message(outcome.env, outcome.app, outcome.old, outcome.decision, outcome.failure_limit,
                                 outcome.gate_results)
        commits.append((message, [rel, *files]))
    units, commits = _one_commit_per_group(changed, commits)
    rendered_written = output.BackgroundWrite(repo.root, rendering.files, rendered)  # while the pack is made

    def written_then_hook() -> None:  # the branch moves only once every file is written
        rendered_written.join()
        if before_commit:
            before_commit()
    try:
        made = ws.commit_all(commits, identity, contents, before_update=written_then_hook)
    finally:
        rendered_written.join()
    for unit, sha in zip(units, made, strict=True):
        for outcome in unit:
            outcome.committed = sha


class _Prepared:
    """The render of one tick's decided changes, made when first asked for: while Prometheus
    answers an environment's queries, :meth:`check` checks that environment's specs for it
    (the render needs them checked, and the tick would otherwise wait idle)."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self._rendering: Any = None
        self.seconds = 0.0  # spent in check, while queries were out

    def apps(self) -> Any:
        """The :class:`generator.render.render.AppsRendering` of this load of the repository."""
        if self._rendering is None:
            from generator.render import render  # heavy: only when a tick will commit or checks ahead

            self._rendering = render.AppsRendering(self.repo)
        return self._rendering

    def check(self, env: str) -> None:
        started = time.perf_counter()
        self.apps().check(env)
        self.seconds += time.perf_counter() - started


def _one_commit_per_group(changed: list[Outcome], commits: list[tuple[str, list[str]]]
                          ) -> tuple[list[list[Outcome]], list[tuple[str, list[str]]]]:
    """The outcomes and their ``(message, paths)`` merged so that the members of a rollout
    group in one environment change in one commit (:func:`group_commit_message`)."""
    units: dict[Any, list[int]] = {}
    for index, outcome in enumerate(changed):
        group = outcome.item.group if outcome.item is not None else None
        units.setdefault((outcome.env, group) if group else index, []).append(index)
    merged_units, merged = [], []
    for key, indexes in units.items():
        members = [changed[i] for i in indexes]
        paths = [p for i in indexes for p in commits[i][1]]
        message = commits[indexes[0]][0] if len(indexes) == 1 else \
            group_commit_message(key[1], members, [commits[i][0] for i in indexes])
        merged_units.append(members)
        merged.append((message, paths))
    return merged_units, merged


def group_commit_message(group: str, members: Sequence[Outcome], messages: Sequence[str]) -> str:
    """The one commit message of a rollout group's change in one environment: a subject
    naming the group, the environment, what happened to each member and the old -> new
    canary weight, and each member's own message as the body."""
    env = members[0].env
    subjects = [m.split("\n", 1)[0] for m in messages]
    parts = [subject.split(": ", 1)[1] if ": " in subject else subject for subject in subjects]
    actions = {o.decision.action for o in members}
    weights = {(int((o.old or {}).get("canaryWeight", 0)) if (o.old or {}).get("canary") ==
                o.decision.status.get("canary") else 0, int(o.decision.status.get("canaryWeight", 0)))
               for o in members}
    verbs = {Action.START: "start", Action.STEP: "step", Action.ROLLBACK: "rollback", Action.ABORT: "rollback"}
    canaries = ", ".join(f"{o.app} {o.decision.status.get('canary')}" for o in members)
    if actions == {Action.SUCCEED}:
        subject = f"rollout group {group} ({env}): canaries {canaries} succeeded at 100 %"
    elif actions == {Action.APPLIED} and len(weights) == 1:
        subject = f"rollout group {group} ({env}): canaries {canaries} at {next(iter(weights))[1]} % seen applied"
    elif len(actions) == 1 and len(weights) == 1 and next(iter(actions)) in verbs:
        (before, after), = weights
        subject = f"rollout group {group} ({env}): {verbs[next(iter(actions))]} {canaries}, {before} % -> {after} %"
    else:
        subject = f"rollout group {group} ({env}): " + "; ".join(f"{o.app} {part}"
                                                                 for o, part in zip(members, parts))
    body = "\n\n".join(message.rstrip("\n") for message in messages)
    return f"{subject}\n\n{body}\n"


def _put_back(ws: vcs.Workspace) -> None:
    """After a write that failed for want of space: put the bot's files back to ``HEAD`` if
    git can (else the next tick does, as after a killed one)."""
    try:
        ws.restore()
    except (MeshgenError, OSError) as e:
        log.warning("could not put back the files this tick wrote (%s); the next tick will", e)


def _assert_consistent(ws: vcs.Workspace, repo: Repo, outcome: Outcome, rendering: Any) -> None:
    """Refuse to commit a status whose canary weight is not the one the rendering applied.

    The rendered route must come from exactly the status being committed (stable, canary,
    canaryWeight); anything else means the checkout changed under this tick (another process
    wrote a status file), and committing would push a ``rendered/`` that disagrees with
    ``status/``.

    Raises:
        GitError: they disagree (exit 3); the tick's uncommitted writes are put back.
    """
    st = outcome.decision.status
    effective = outcome.item.effective if outcome.item is not None else repo.effective_app(outcome.app, outcome.env)
    block = (effective.spec or {}).get("rollout") or {}
    applies = (st.get("stable") == block.get("stable") and st.get("canary") == block.get("canary")
               and st.get("phase") != decision.WAITING)  # as the renderer applies a status
    expected = (st.get("stable"), st.get("canary"), st.get("canaryWeight")) if applies else None
    applied = rendering.applied.get((outcome.env, outcome.app), "missing")
    if applied != expected:
        ws.restore()
        raise GitError(f"{outcome.env}/{outcome.app}: the rendered route gives {_weights(applied)} but the status "
                       f"to commit says {_weights(expected)}; the checkout changed during this tick (another "
                       f"tick in the same checkout?), so nothing was committed")


def _weights(value: Any) -> str:
    if value is None:
        return "no canary weight"
    if value == "missing":
        return "nothing (the app was not rendered)"
    stable, canary, weight = value
    return f"{stable} {100 - weight} % / {canary} {weight} %"


def tick(root: Path, *, envs: Sequence[str] | None = None, apps: Sequence[str] | None = None,
         dry_run: bool = False, push: bool = False, prometheus: str | None = None,
         clock: Callable[[], datetime] = utcnow, identity: vcs.Identity | None = None,
         attempts: int = PUSH_ATTEMPTS, before_commit: Callable[[], None] | None = None,
         lock_wait: float | None = None, deadline: float | None = None) -> TickReport:
    """Run one tick of the rollout bot over the config repository at ``root``.

    The tick holds the clone's tick lock (:class:`generator.bot.lock.TickLock`) from start to
    end; a dry run takes no lock.

    Args:
        root: the top of the repository's git working tree.
        envs: only these environments (default: all).
        apps: only these apps (default: all).
        dry_run: decide and report, write and commit nothing (no Prometheus query is skipped).
        push: sync with the tracked remote branch first and push the commits.
        prometheus: a Prometheus URL for every environment (tests and demos; default:
            ``$MESHGEN_PROMETHEUS_URL`` or each environment's ``spec.prometheus.url``).
        clock: the time source (UTC).
        identity: the bot's commit identity (default: :func:`generator.bot.vcs.bot_identity`).
        attempts: how often a rejected push is decided again and retried.
        before_commit: called after writing, before committing (lets a test die in between).
        lock_wait: seconds to wait for another live tick of this clone (default:
            ``$MESHGEN_BOT_LOCK_WAIT``, else :data:`generator.bot.lock.DEFAULT_WAIT`).
        deadline: seconds the whole tick may take (default
            :data:`generator.bot.deadline.DEFAULT_SECONDS`; ``math.inf`` for none). Every
            Prometheus request, gate and git fetch or push gets at most what is left of it; once it
            has passed nothing more is written, committed or pushed.

    Returns:
        The :class:`TickReport`; it lists environments whose Prometheus failed (the CLI then
        exits 3).

    Raises:
        SpecErrors: invalid specs or status files (nothing is written).
        UsageError: unknown environment or app.
        GitError: git failed, the push was rejected ``attempts`` times, or the local branch
            has commits that are not the bot's.
        TickLockBusy: another tick of this clone held the lock for all of ``lock_wait`` (exit 3).
        DeadlineExceeded: the tick's deadline passed (exit 3); nothing was committed after it.
        DiskFullOutside: a status or rendered file could not be written for want of space
            (exit 3); the files the tick wrote are put back, nothing is committed.
    """
    with _tick_lock(Path(root), lock_wait, dry_run) as held, timelimit.cyclic_gc_paused():
        started = time.perf_counter()
        limit = Deadline() if deadline is None else Deadline(deadline)  # from when the lock is held
        root = Path(root)
        report = TickReport()
        repo = load_repo(root)
        if dry_run:  # a real tick refuses invalid specs when it renders; a dry run must too
            from generator.render import render

            render.render_repo(root, list(envs) if envs else None)
        owned = [repo.rel("status"), repo.rel("rendered")]
        ws = None if dry_run else vcs.Workspace(root, owned)
        if identity is None:
            identity = vcs.bot_identity(repo.settings.raw)
        upstream = ws.upstream() if ws and push else None
        if ws:
            _recovered(held)
            restored = ws.restore(interrupted=bool(held and held.interrupted))
            if restored:
                log.warning("finishing an interrupted tick: put back %s", ", ".join(restored))
        loaded = ws.head() if ws else None
        for attempt in range(1, attempts + 1):
            report.attempts = attempt
            report.failed_envs.clear()
            report.problems.clear()
            if ws and upstream and ws.sync(upstream, identity,
                                           limit.budget(GIT_NETWORK_SECONDS, "before fetching")) != loaded:
                repo, loaded = load_repo(root), ws.head()
            prepared = _Prepared(repo) if ws else None
            outcomes = _decide_all(repo, envs, apps, clock(), prometheus, report, dry_run, limit, clock,
                                   prepared.check if prepared else None)
            report.outcomes = outcomes
            if ws is None:
                break
            report.render_seconds += prepared.seconds
            if any(o.changed for o in outcomes):
                limit.check("before writing the decided changes")
            commit_started, rendered = time.perf_counter(), report.render_seconds
            try:
                _write_and_commit(ws, repo, outcomes, identity, before_commit, report, limit, prepared)
            except DiskFull as e:
                _put_back(ws)
                raise DiskFullOutside(e.path, "free space on the disk of the bot's clone; the next tick puts "
                                              "back what this one wrote and decides again") from e
            report.commit_seconds += time.perf_counter() - commit_started - (report.render_seconds - rendered)
            if not upstream or not report.commits:
                break
            if ws.push(upstream, limit.budget(GIT_NETWORK_SECONDS, "before pushing (the commits stay local, "
                                                                    "to be dropped and decided again)")):
                break
            log.warning("push to %s rejected: the branch moved; deciding again (attempt %d of %d)",
                        upstream, attempt + 1, attempts)
            for outcome in outcomes:
                outcome.committed = None
            time.sleep(random.uniform(0.05, 0.3) * attempt)
        else:
            raise GitError(f"push to {upstream} rejected {attempts} times; the branch keeps moving")
        report.seconds = time.perf_counter() - started
        if not dry_run:
            _notify(report.commits)
        return report


def _notify(outcomes: Iterable[Outcome]) -> None:
    """Post the Slack notices of committed changes; a failing notice is logged, never raised
    (the commit is the record)."""
    for outcome in outcomes:
        try:
            notify.notify(outcome.webhook_url_env, outcome.app, outcome.env, outcome.decision.action,
                          outcome.decision.reason)
        except Exception as e:  # a notice must never fail a tick whose commits are pushed
            log.warning("Slack notice for %s in %s failed: %s", outcome.app, outcome.env, type(e).__name__)


# --- steering by hand ---------------------------------------------------------------------

STEER = {"pause": decision.pause, "resume": decision.resume, "abort": decision.abort, "promote": decision.promote}


def steer(root: Path, command: str, app: str, *, envs: Sequence[str] | None = None, push: bool = False,
          clock: Callable[[], datetime] = utcnow, attempts: int = PUSH_ATTEMPTS,
          lock_wait: float | None = None) -> TickReport:
    """Pause, resume, abort or promote ``app``'s rollout (in ``envs``, default all), each
    change a commit by git's configured user, under the tick lock as :func:`tick`. Where the
    app is in a rollout group, every member of its group in that environment is steered with
    it, in one commit.

    Raises:
        UsageError: unknown command, app or environment.
        CheckFailed: nothing to change anywhere (e.g. pausing a finished rollout): exit 1.
        SpecErrors, GitError, TickLockBusy: as :func:`tick`.
    """
    if command not in STEER:
        raise UsageError(f"unknown rollout command {command!r}")
    root = Path(root)
    with _tick_lock(root, lock_wait) as held:
        repo = load_repo(root)
        ws = vcs.Workspace(root, [repo.rel("status"), repo.rel("rendered")])
        identity = vcs.bot_identity(repo.settings.raw)
        upstream = ws.upstream() if push else None
        _recovered(held)
        ws.restore(interrupted=bool(held and held.interrupted))
        report = TickReport()
        made: list[str] = []
        for attempt in range(1, attempts + 1):
            report.attempts = attempt
            if upstream:
                _drop(ws, made)
                ws.sync(upstream, identity)
            repo = load_repo(root)
            items = _rollouts(repo, envs, [app])
            if not items:
                raise UsageError(f"app {app!r} has no rollout block in {', '.join(envs or repo.environments)}")
            items += _group_members(repo, envs, items)
            now = clock()
            report.outcomes = [Outcome(i.env, i.app, i.status, _steered(command, i, now),
                                       failure_limit=i.rollout.failure_limit, webhook_url_env=i.rollout.webhook_url_env,
                                       item=i)
                               for i in items]
            try:
                _write_and_commit(ws, repo, report.outcomes, None)
            except DiskFull:
                _put_back(ws)
                raise
            made = [o.committed for o in report.outcomes if o.committed]
            if not made:
                raise CheckFailed("; ".join(f"{o.env}/{o.app}: {o.decision.reason}" for o in report.outcomes))
            if not upstream or ws.push(upstream):
                break
            time.sleep(random.uniform(0.05, 0.3) * attempt)
        else:
            raise GitError(f"push to {upstream} rejected {attempts} times; the branch keeps moving")
        _notify(report.commits)
        return report


def approve(root: Path, app: str, env: str, *, push: bool = False, clock: Callable[[], datetime] = utcnow,
            attempts: int = PUSH_ATTEMPTS, lock_wait: float | None = None) -> TickReport:
    """Approve the stable -> canary pair of ``app`` in ``env``, where its promotion pipeline
    asks for approval: a commit of ``status/<env>/<app>.yaml`` (phase ``Waiting``, the
    approval) whose git author, git's configured user, is the approver. The pair may be
    approved before the environment before it has succeeded; it still waits for that.

    Raises:
        UsageError: unknown app or environment; ``env`` is not in the app's pipeline or needs
            no approval there (exit 2).
        CheckFailed: nothing waits for approval: no canary in ``env``, the pair has started
            there already, or it is approved already (exit 1).
        SpecErrors, GitError, TickLockBusy: as :func:`tick`.
    """
    root = Path(root)
    vcs.refuse_in_progress(root)
    repo = load_repo(root)
    if app not in repo.apps:
        raise UsageError(f"unknown app {app!r}")
    if env not in repo.environments:
        raise UsageError(f"unknown environment {env!r} (known: {', '.join(repo.environments)})")
    pipeline = promotion.pipeline_of(repo, app)
    if pipeline is None:
        raise UsageError(f"{app} has no promotion pipeline: nothing there needs approval")
    if env not in pipeline.order:
        raise UsageError(f"{env} is not in the promotion pipeline of {app} ({' -> '.join(pipeline.order)})")
    if not pipeline.needs_approval(env):
        needing = ", ".join(sorted(pipeline.approval)) or "none"
        raise UsageError(f"{env} needs no approval in the promotion pipeline of {app} "
                         f"(environments that do: {needing})")
    with _tick_lock(root, lock_wait) as held:
        ws = vcs.Workspace(root, [repo.rel("status"), repo.rel("rendered")])
        approver = ws.author()
        upstream = ws.upstream() if push else None
        _recovered(held)
        ws.restore()
        report = TickReport()
        made: list[str] = []
        for attempt in range(1, attempts + 1):
            report.attempts = attempt
            if upstream:
                _drop(ws, made)
                ws.sync(upstream, vcs.bot_identity(repo.settings.raw))
            repo = load_repo(root)
            items = _rollouts(repo, [env], [app])
            if not items or items[0].rollout.stable == items[0].rollout.canary:
                raise CheckFailed(f"nothing waits for approval: {app} has no canary in {env}")
            item, now = items[0], clock()
            try:
                new = promotion.approve(item.status, item.rollout.stable, item.rollout.canary,
                                        f"{approver.name} <{approver.email}>", now)
            except ValueError as e:
                raise CheckFailed(f"nothing waits for approval: {app} in {env}: {e}") from e
            statuses = item.statuses()
            admission = promotion.admit(item.pipeline, app, env, item.rollout.stable, item.rollout.canary,
                                        item.previous_status, new, now,
                                        statuses=None if statuses is None else dict(statuses, **{env: new}))
            note = "" if admission.open else f"; it still waits: {admission.reason}"
            outcome = Outcome(env, app, item.status, Decision(new, Action.APPROVE, new["message"] + note),
                              failure_limit=item.rollout.failure_limit)
            report.outcomes = [outcome]
            try:
                _write_and_commit(ws, repo, report.outcomes, None)
            except DiskFull:
                _put_back(ws)
                raise
            made = [o.committed for o in report.outcomes if o.committed]
            if not upstream or ws.push(upstream):
                break
            time.sleep(random.uniform(0.05, 0.3) * attempt)
        else:
            raise GitError(f"push to {upstream} rejected {attempts} times; the branch keeps moving")
        return report


def _group_members(repo: Repo, envs: Sequence[str] | None, items: Sequence[_Rollout]) -> list[_Rollout]:
    """The other members of the rollout groups of ``items`` (in the same environments): a
    group is paused, resumed, aborted and promoted by hand as one, in one commit."""
    groups_of = {(i.env, i.group) for i in items if i.group}
    if not groups_of:
        return []
    named = {(i.env, i.app) for i in items}
    return [i for i in _rollouts(repo, envs, None) if (i.env, i.group) in groups_of and (i.env, i.app) not in named]


def _steered(command: str, item: _Rollout, now: datetime) -> Decision:
    if command in ("resume", "promote"):  # both may start the pair: the pipeline decides if it may
        admission = promotion.admit(item.pipeline, item.app, item.env, item.rollout.stable, item.rollout.canary,
                                    item.previous_status, item.status, now, by_hand=True, statuses=item.statuses())
        made = STEER[command](item.rollout, item.status, now, admission)
    else:
        made = STEER[command](item.rollout, item.status, now)
    return promotion.with_stop_note(made, item.pipeline, item.env)


def _drop(ws: vcs.Workspace, made: Iterable[str]) -> None:
    """Undo this process's own unpushed commits (``made``, newest last) before deciding again."""
    made = [sha for sha in made if sha]
    if made:
        first = ws.repo.commit(made[0])
        try:
            ws.repo.head.reset(first.parents[0], index=True, working_tree=True)
        except Exception as e:  # GitPython raises several types here
            raise GitError(f"could not drop unpushed commit {first.hexsha[:8]}: {e}") from e


def status_problems(root: Path, envs: Sequence[str] | None = None, apps: Sequence[str] | None = None,
                    now: datetime | None = None) -> list[SpecError]:
    """What makes a tick leave the matching rollouts alone, for ``rollout status``: status
    times in the future (:func:`future_times`) and impossible statuses (:func:`impossible`)."""
    repo = load_repo(Path(root))
    now = now or utcnow()
    return [p for i in _rollouts(repo, envs, apps)
            for p in future_times(repo.root, i.status_path, i.status, now) + impossible(repo.root, i)]


def read_statuses(root: Path, envs: Sequence[str] | None = None, apps: Sequence[str] | None = None
                  ) -> list[tuple[str, str, Rollout, dict[str, Any] | None]]:
    """``(env, app, rollout, status)`` of every app with a rollout block, for ``rollout status``:
    environments in pipeline order (``meshgen.yaml``'s ``promotion.order``), then the others
    alphabetically; within one, apps as the repository lists them."""
    repo = load_repo(Path(root))
    rank = {env: i for i, env in enumerate(promotion.env_order(repo.settings.raw, list(repo.environments)))}
    items = sorted(_rollouts(repo, envs, apps), key=lambda i: rank[i.env])  # stable: app order kept
    return [(i.env, i.app, i.rollout, i.status) for i in items]


def read_pipelines(root: Path, apps: Sequence[str] | None = None, clock: Callable[[], datetime] = utcnow
                   ) -> list[tuple[str, promotion.Pipeline, list[promotion.Stage]]]:
    """``(app, pipeline, stages)`` of every app (or those named) with a rollout in a promotion
    pipeline, for ``rollout status``."""
    repo = load_repo(Path(root))
    now = clock()
    closed = {env: _closed_label(state) for env, state in windows.states(promotion.windows_of(repo), now).items()
              if not state.open}
    found = []
    for app, pipeline in promotion.pipelines(repo).items():
        if pipeline is None or (apps and app not in apps):
            continue
        pairs: dict[str, tuple[str, str] | None] = {}
        statuses: dict[str, dict[str, Any] | None] = {}
        for env in pipeline.order:
            spec = repo.effective_app(app, env).data.get("spec") or {}
            block = spec.get("rollout") if isinstance(spec, dict) else None
            pairs[env] = (str(block["stable"]), str(block["canary"])) if isinstance(block, dict) \
                and "stable" in block and "canary" in block else None
            statuses[env] = status.load_status(repo.root, status.status_path(repo.rel("status"), env, app))
        if any(pairs.values()):
            found.append((app, pipeline, promotion.stages(pipeline, app, pairs, statuses, now, closed)))
    return found


def _closed_label(state: windows.State) -> str:
    until = f" until {decision.format_time(state.opens)}" if state.opens else ""
    return ("frozen" if state.frozen else "outside its promotion window") + until


def read_windows(root: Path, envs: Sequence[str] | None = None, clock: Callable[[], datetime] = utcnow
                 ) -> dict[str, windows.State]:
    """The :class:`~generator.rollout.windows.State` of each environment (or those named)
    that its promotion windows close now, for ``rollout status``."""
    repo = load_repo(Path(root))
    states = windows.states(promotion.windows_of(repo), clock())
    return {env: state for env, state in states.items() if not state.open and (not envs or env in envs)}
