"""``meshgen report --out DIR``: a static site of the mesh and its rollouts, read from git.

The site works opened from disk, offline: plain HTML pages, one stylesheet, our small
``report.js`` and Chart.js (vendored in ``generator/report/assets/``, MIT, see ``SOURCE``);
no CDN, no server, no request of any kind. Each page carries its data as one JSON document
(``<script type="application/json" id="meshgen-data">``) that ``report.js`` draws with
Chart.js, so what a chart shows is exactly what :mod:`generator.rollout.history` rebuilt.

Pages:

- ``index.html``: per environment, in pipeline order (``promotion.order`` of ``meshgen.yaml``,
  then the others alphabetically), every app's routes as the spec names them, read from the
  rendered VirtualService with the guard routes folded into the route they serve, each with
  its condition and its traffic split drawn as bars, or its redirect or direct response in
  words; the rollouts in progress; every rollout of the history with a link to its page.
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
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import git
import jinja2

from generator.bot import backtest as bot_backtest
from generator.bot import history as bot_history
from generator.errors import MeshgenError, PrometheusError, UsageError
from generator import targets
from generator.gitops import diff
from generator.render import output, render
from generator.rollout import decision, history, metrics
from generator.rollout import promotion as promotion_mod
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
    """Per environment (in pipeline order, see :func:`env_order`), each app's routes as the
    spec names them, read from the rendered VirtualService with the guard routes meshgen adds
    folded into the route they serve (as ``meshgen diff`` reads them,
    :func:`generator.gitops.diff.spec_routes`): name, condition, what the route does
    (``forward`` with its split, ``redirect`` or ``directResponse`` with its words), mirror; then TCP and TLS routes (which Istio does not
    name) as ``tcp #1``, ``tls #1``."""
    when = diff.conditions(rendering)
    envs: dict[str, list[dict[str, Any]]] = {env: [] for env in env_order(rendering.repo, rendering.envs)}
    by_app: dict[tuple[str, str], list[Any]] = {}
    for obj in rendering.objects:
        by_app.setdefault((obj.env, obj.app), []).append(obj)
    for objs in by_app.values():
        # each output target reads its route objects as the VirtualService Istio makes of them
        target = targets.of_objects(o.obj for o in objs)
        if target is None:
            continue
        obj = next(o for o in objs if o.kind in target.route_kinds)
        routes = []
        spec = target.as_virtual_service([o.obj for o in objs])[0].get("spec") or {}
        for name, condition, http in diff.spec_routes(spec, when.get((obj.env, obj.app))):
            split = [{"version": (d.get("destination") or {}).get("subset") or (d.get("destination") or {}).get("host"),
                      "weight": int(d.get("weight", 100))} for d in http.get("route") or []]
            mirror = http.get("mirror")
            action = ("redirect" if "redirect" in http and not split else
                      "directResponse" if "directResponse" in http and not split else "forward")
            routes.append({"name": name, "when": condition, "matches": len(http.get("match") or []),
                           "split": split, "action": action, "actionText": diff.action_text(http),
                           "mirror": (mirror or {}).get("subset"),
                           "mirrorPercent": (http.get("mirrorPercentage") or {}).get("value")})
        for key in ("tcp", "tls"):
            for index, l4 in enumerate((obj.obj.get("spec") or {}).get(key) or []):
                split = [{"version": (d.get("destination") or {}).get("subset") or (d.get("destination") or {}).get("host"),
                          "weight": int(d.get("weight", 100))} for d in l4.get("route") or []]
                routes.append({"name": f"{key} #{index + 1}", "when": None, "matches": len(l4.get("match") or []),
                               "split": split, "action": "forward", "actionText": diff.action_text(l4),
                               "mirror": None, "mirrorPercent": None})
        envs[obj.env].append({"app": obj.app, "namespace": obj.namespace,
                              "hosts": spec.get("hosts") or [], "routes": routes})
    for apps in envs.values():
        apps.sort(key=lambda a: a["app"])
    return envs


def env_order(repo: Repo, envs: Sequence[str]) -> list[str]:
    """``envs`` in pipeline order (:func:`generator.rollout.promotion.env_order`)."""
    return promotion_mod.env_order(repo.settings.raw, envs)


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
    """Write the site of the repository at ``root`` into ``out`` (created). Files an earlier
    report wrote there (listed in ``out``'s :data:`MARKER`) are replaced; any other file is
    never overwritten, nothing is written through a symbolic link, and the repository's root,
    its rendered directory and ``.git/`` are refused (:func:`refuse_out`). A SIGTERM or SIGINT
    leaves every file whole and no temporary behind.

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
        UsageError: ``root`` is not a git repository with a commit; ``out`` is refused: the
            repository's root, in its rendered directory or ``.git/``, holding a symbolic
            link where the report writes, or a file an earlier report did not write (exit 2).
        DiskFull: no space left (exit 1).
        SpecErrors: invalid specs.
        PrometheusError: with ``backtest``, Prometheus failed (exit 3).
    """
    root, out = Path(root), Path(out)
    head, head_time = _head(root)
    repo = load_repo(root)
    refuse_out(root, out, repo.rel("rendered"))
    rendering = render.render_repo(root)
    timelines = bot_history.read_history(root)
    report = Report(out, timelines=timelines)
    files: dict[str, bytes] = {}
    for name in ASSETS:
        files[f"assets/{name}"] = resources.files("generator.report").joinpath("assets", name).read_bytes()
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
        files[rel] = page.encode()
        pages.append(rel)
    index = _JINJA.get_template("index.html.j2").render(
        envs=routes, timelines=timelines, latest=latest, head=head, head_time=head_time, fmt=decision.format_time,
        colour=colour, span=history.format_span, index_data=_json({"rollouts": [t.id for t in timelines]}))
    files["index.html"] = index.encode()
    own = _own_files(out)
    _refuse_foreign(out, files, own)
    with output.removing_temporaries_on_signals(str(out)):
        out.mkdir(parents=True, exist_ok=True)
        listed = sorted(own | set(files))  # listed first: an interrupted report is still its own
        output.atomic_write(out / MARKER, (MARKER_HEAD + "".join(f"{rel}\n" for rel in listed)).encode())
        for rel, data in files.items():
            output.atomic_write(out / rel, data)
    report.pages = ["index.html", *pages]
    return report


#: The file in ``--out`` listing every file a report wrote there (one a line, ``/``-separated,
#: relative to ``--out``): only those are ever replaced; anything else there is left alone.
MARKER = ".meshgen-report"
MARKER_HEAD = ("# Written by meshgen report: the files below are its own, replaced by the next report; "
               "no other file in this folder is ever written\n")

_HINT = "choose another --out, or move what is there away"


def refuse_out(root: Path, out: Path, rendered_dir: str) -> None:
    """Refuse an ``--out`` that is the repository's root, or its rendered directory or git
    directory or inside them, or that is not a directory.

    Raises:
        UsageError: naming the path (exit 2).
    """
    where = out.resolve()
    top = root.resolve()
    try:
        toplevel = Path(git.Repo(root, search_parent_directories=True).working_tree_dir or top).resolve()
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        toplevel = top
    for forbidden, what in ((top / rendered_dir, f"{rendered_dir}/, which meshgen render owns"),
                            (top / ".git", ".git/, git's own directory"),
                            (toplevel / ".git", ".git/, git's own directory")):
        if where == forbidden.resolve() or where.is_relative_to(forbidden.resolve()):
            raise UsageError(f"--out {out}: is inside the repository's {what}; the report is never written "
                             f"there (hint: choose a folder of its own, e.g. --out build/report)")
    if where in (top, toplevel):
        raise UsageError(f"--out {out}: is the repository's root; the report is never written over it "
                         f"(hint: choose a folder of its own, e.g. --out build/report)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder ({_HINT})")


def _own_files(out: Path) -> set[str]:
    """The files an earlier report listed in ``out``'s :data:`MARKER` (none without one).

    Raises:
        UsageError: the marker is a link, or not a list this command wrote (exit 2).
    """
    marker = out / MARKER
    if marker.is_symlink():
        raise UsageError(f"--out {out}: {marker} is a symbolic link; the report never writes through a link "
                         f"(hint: remove it, or {_HINT})")
    try:
        text = marker.read_text(encoding="utf-8")
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--out {out}: {marker} cannot be read ({type(e).__name__}); it is not the list meshgen "
                         f"report keeps (hint: {_HINT})") from e
    if not text.startswith(MARKER_HEAD):
        raise UsageError(f"--out {out}: {marker} was not written by meshgen report; it is not overwritten "
                         f"(hint: {_HINT})")
    return {line for line in text.splitlines()[1:] if line and not line.startswith("#")}


def _refuse_foreign(out: Path, files: Mapping[str, bytes], own: set[str]) -> None:
    """Refuse to write through a symbolic link in ``out``, or over a file that an earlier
    report did not write (one with the same bytes is no loss and is let be).

    Raises:
        UsageError: naming the first paths found (exit 2); nothing has been written.
    """
    links: list[str] = []
    foreign: list[str] = []
    for rel in sorted(files):
        path = out
        for part in rel.split("/"):
            path = path / part
            if path.is_symlink():
                shown = f"{path} (to {os.readlink(path)})"
                if shown not in links:
                    links.append(shown)
                break
        else:
            if rel not in own and path.exists():
                try:
                    same = path.is_file() and path.read_bytes() == files[rel]
                except OSError:
                    same = False
                if not same:
                    foreign.append(str(path))
    if links:
        are = "is a symbolic link" if len(links) == 1 else "are symbolic links"
        raise UsageError(f"--out {out}: {_first(links)} {are}; the report never writes through a link "
                         f"(hint: remove the link, or {_HINT})")
    if foreign:
        raise UsageError(f"--out {out}: {_first(foreign)} {'exists' if len(foreign) == 1 else 'exist'} and "
                         f"{'was' if len(foreign) == 1 else 'were'} not written by meshgen report (not listed in "
                         f"{out / MARKER}); nothing was overwritten (hint: {_HINT})")


def _first(paths: list[str], n: int = 3) -> str:
    more = f" and {len(paths) - n} more" if len(paths) > n else ""
    return ", ".join(paths[:n]) + more
