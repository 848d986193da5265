"""``meshgen report --out DIR``: a static site of the mesh and its rollouts, read from git.

The site works opened from disk, offline: plain HTML pages, one stylesheet, our small
``report.js`` and Chart.js (vendored in ``generator/report/assets/``, MIT, see ``SOURCE``);
no CDN, no server, no request of any kind. Each page carries its data as one JSON document
(``<script type="application/json" id="meshgen-data">``) that ``report.js`` draws with
Chart.js, so what a chart shows is exactly what :mod:`generator.rollout.history` rebuilt.

Pages:

- ``index.html``: per environment, every app's routes as Istio receives them (the rendered
  VirtualService) with their traffic split drawn as bars; the rollouts in progress; every
  rollout of the history with a link to its page.
- ``rollouts/<id>.html``: one rollout (:attr:`generator.rollout.history.Timeline.id`): the
  canary's weight over time as steps, each checked metric against its ``min``/``max``, a
  marker per verdict (pass, fail, inconclusive), each point linked to its commit; with
  ``--backtest`` the weight the bot would have given under the app's current policy, drawn
  beside the real run; and the commits in full.

The bytes depend only on the repository (no clock is read), so a report committed or
published twice from the same commit is the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import git
import jinja2

from generator.bot import backtest as bot_backtest
from generator.bot import history as bot_history
from generator.errors import MeshgenError, PrometheusError, UsageError
from generator.render import output, render
from generator.rollout import decision, history, metrics
from generator.rollout.history import Timeline
from generator.spec.config import Repo, load_repo

ASSETS = ("chart.umd.min.js", "chart.js.LICENSE.md", "SOURCE", "report.js", "report.css")
#: Colours of versions, in order of first appearance on a page.
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f")

_JINJA = jinja2.Environment(loader=jinja2.PackageLoader("generator.report", "templates"),
                            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass
class Report:
    """What :func:`write_report` wrote.

    Attributes:
        out: the site's folder; ``index`` its front page.
        pages: every HTML page written, relative to ``out``.
        timelines: the rollouts drawn.
        backtests: rollouts that got a backtest beside them; ``skipped`` why others did not.
    """

    out: Path
    pages: list[str] = field(default_factory=list)
    timelines: list[Timeline] = field(default_factory=list)
    backtests: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.out / "index.html"


def _json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).replace("</", "<\\/")


def _head(root: Path) -> tuple[str, str]:
    try:
        repo = git.Repo(root, search_parent_directories=True)
        commit = repo.head.commit
        return commit.hexsha, decision.format_time(commit.committed_datetime)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError) as e:
        raise UsageError(f"{root} is not a git repository with a commit; the report is read from git") from e


def _routes(rendering: render.Rendering) -> dict[str, list[dict[str, Any]]]:
    """Per environment, each app's routes as rendered: name, match count, the split; HTTP routes
    by name, then TCP and TLS routes (which Istio does not name) as ``tcp #1``, ``tls #1``."""
    envs: dict[str, list[dict[str, Any]]] = {env: [] for env in rendering.envs}
    for obj in rendering.objects:
        if obj.kind != "VirtualService":
            continue
        routes = []
        for index, http in enumerate((obj.obj.get("spec") or {}).get("http") or []):
            split = [{"version": (d.get("destination") or {}).get("subset") or (d.get("destination") or {}).get("host"),
                      "weight": int(d.get("weight", 100))} for d in http.get("route") or []]
            mirror = http.get("mirror")
            routes.append({"name": http.get("name") or f"route {index}", "matches": len(http.get("match") or []),
                           "split": split, "mirror": (mirror or {}).get("subset"),
                           "mirrorPercent": (http.get("mirrorPercentage") or {}).get("value")})
        for key in ("tcp", "tls"):
            for index, l4 in enumerate((obj.obj.get("spec") or {}).get(key) or []):
                split = [{"version": (d.get("destination") or {}).get("subset") or (d.get("destination") or {}).get("host"),
                          "weight": int(d.get("weight", 100))} for d in l4.get("route") or []]
                routes.append({"name": f"{key} #{index + 1}", "matches": len(l4.get("match") or []),
                               "split": split, "mirror": None, "mirrorPercent": None})
        envs[obj.env].append({"app": obj.app, "namespace": obj.namespace,
                              "hosts": (obj.obj.get("spec") or {}).get("hosts") or [], "routes": routes})
    for apps in envs.values():
        apps.sort(key=lambda a: a["app"])
    return envs


def _thresholds(repo: Repo, timeline: Timeline) -> dict[str, dict[str, float | None]]:
    """``{metric: {min, max, dryRun}}`` of the app's current rollout block in the timeline's env;
    ``requests`` gets ``minRequests`` as its ``min``."""
    try:
        found = bot_backtest.rollout_in(repo, timeline.app, timeline.env)
    except MeshgenError:
        return {}
    if found is None:
        return {}
    rollout = found[1]
    try:
        listed = metrics.policy_metrics(rollout)
    except ValueError:
        return {}
    bounds: dict[str, dict[str, Any]] = {}
    if listed:
        bounds[metrics.REQUESTS] = {"min": float(rollout.min_requests), "max": None, "dryRun": False}
    for m in listed:
        if m.name not in bounds or not m.dry_run:  # a decisive bound wins over a dry run's
            bounds[m.name] = {"min": m.min, "max": m.max, "dryRun": m.dry_run}
    return bounds


def _link(commit: str, commit_url: str | None) -> str:
    return commit_url.replace("{sha}", commit) if commit_url else f"#commit-{commit}"


def rollout_data(timeline: Timeline, thresholds: Mapping[str, Mapping[str, Any]], commit_url: str | None,
                 replay: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document a rollout page draws: the timeline's events with their links, the
    thresholds of each metric and, when given, the backtest's ticks."""
    data = timeline.to_json()
    for event in data["events"]:
        event["link"] = _link(event["commit"], commit_url)
    names: list[str] = []
    for event in timeline.events:
        for name in ((event.check or {}).get("metrics") or {}):
            if name not in names:
                names.append(name)
    data["metrics"] = [{"name": n, "min": (thresholds.get(n) or {}).get("min"),
                        "max": (thresholds.get(n) or {}).get("max"),
                        "dryRun": bool((thresholds.get(n) or {}).get("dryRun"))} for n in names]
    data["backtest"] = dict(replay) if replay else None
    return data


def write_report(root: Path, out: Path, *, backtest: bool = False, prometheus: str | None = None,
                 commit_url: str | None = None) -> Report:
    """Write the site of the repository at ``root`` into ``out`` (created; files meshgen
    wrote there before are replaced, others left alone).

    Args:
        root: the config repository (a git working tree).
        out: the site's folder.
        backtest: also replay each rollout under the app's current policy over Prometheus
            history (:func:`generator.bot.backtest.run_backtest`) and draw it beside the run.
        prometheus: a Prometheus URL for the backtests (default: as the bot finds it).
        commit_url: a link for each commit, ``{sha}`` replaced by its SHA (for example
            ``https://github.com/OWNER/REPO/commit/{sha}``); default: the commit's entry on the
            rollout's own page.

    Raises:
        UsageError: ``root`` is not a git repository with a commit.
        SpecErrors: invalid specs.
        PrometheusError: with ``backtest``, Prometheus failed (exit 3).
    """
    root, out = Path(root), Path(out)
    head, head_time = _head(root)
    repo = load_repo(root)
    rendering = render.render_repo(root)
    timelines = bot_history.read_history(root)
    report = Report(out, timelines=timelines)
    (out / "rollouts").mkdir(parents=True, exist_ok=True)
    (out / "assets").mkdir(exist_ok=True)
    for name in ASSETS:
        source = resources.files("generator.report").joinpath("assets", name)
        output.atomic_write(out / "assets" / name, source.read_bytes())
    colours: dict[str, str] = {}

    def colour(version: str) -> str:
        return colours.setdefault(version, PALETTE[len(colours) % len(PALETTE)])

    routes = _routes(rendering)
    latest: dict[tuple[str, str], Timeline] = {}
    for timeline in timelines:
        latest[(timeline.env, timeline.app)] = timeline
    pages = []
    for timeline in timelines:
        replay = None
        if backtest:
            end = timeline.ended or timeline.last.time
            try:
                replay = bot_backtest.run_backtest(
                    root, timeline.app, timeline.env, timeline.started, max(end, timeline.started),
                    overrides={"stable": timeline.stable, "canary": timeline.canary}, prometheus=prometheus).to_json()
                report.backtests += 1
            except PrometheusError:
                raise
            except MeshgenError as e:  # e.g. the app has no rollout block any more
                report.skipped.append(f"{timeline.id}: {e}")
        data = rollout_data(timeline, _thresholds(repo, timeline), commit_url, replay)
        rel = f"rollouts/{timeline.id}.html"
        page = _JINJA.get_template("rollout.html.j2").render(
            t=timeline, data=_json(data), head=head, head_time=head_time, link=lambda c: _link(c, commit_url),
            fmt=decision.format_time, metrics_text=decision.format_metrics, colour=colour, span=history.format_span)
        output.atomic_write(out / rel, page.encode())
        pages.append(rel)
    index = _JINJA.get_template("index.html.j2").render(
        envs=routes, timelines=timelines, latest=latest, head=head, head_time=head_time, fmt=decision.format_time,
        colour=colour, span=history.format_span, index_data=_json({"rollouts": [t.id for t in timelines]}))
    output.atomic_write(out / "index.html", index.encode())
    report.pages = ["index.html", *pages]
    return report
