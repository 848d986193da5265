"""``meshgen rollout ...``: the rollout bot's commands (DESIGN §4, §6). No logic here: each
command calls one function of :mod:`generator.bot.bot` and prints what it did."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from datetime import datetime
from typing import Any

import click
from rich.measure import Measurement
from rich.table import Table

from generator.bot import PROMETHEUS_URL_ENV
from generator.bot import deadline as deadline_mod
from generator.bot import history as bot_history
from generator.cli.base import Context, fail, lazy_module, out_console, pass_ctx, run, verbose_option
from generator.errors import MeshgenError, OutsideError, PrometheusError, UsageError, redact
from generator.rollout import decision, history

# Imported when a command first uses them: ``rollout history`` needs none of the tick's
# machinery (Prometheus and gates clients, templates, the pack writer).
bot = lazy_module("generator.bot.bot")
bot_backtest = lazy_module("generator.bot.backtest")
promotion = lazy_module("generator.rollout.promotion")

_env = click.option("--env", "envs", multiple=True, metavar="E", help="Only this environment (repeatable).")
_push = click.option("--push", is_flag=True, help="Sync with the tracked remote branch first and push the commits.")
_deadline = click.option("--deadline", default=None, metavar="DURATION",
                         help=f"Longest time one tick may take; each Prometheus request and git fetch or push "
                              f"gets at most what is left of it (0 for none). Default: "
                              f"{deadline_mod.DEFAULT_SECONDS:g}s; for run at most 4/5 of --every (5s at least).")
_prometheus = click.option("--prometheus-url", metavar="URL", default=None,
                           help=f"Query this Prometheus for every environment (default: ${PROMETHEUS_URL_ENV}, "
                                "else each environment's spec.prometheus.url).")


@click.group()
def rollout() -> None:
    """Progressive delivery by git commits: analyse canaries in Prometheus, step or roll back."""


def _print(report: bot.TickReport, verbose: bool, dry_run: bool = False, idle: bool = False) -> None:
    """One line per rollout that moved, held or (with ``--verbose``) did nothing; with
    ``idle``, when no rollout moved or held, a line saying so and when the next check is due."""
    shown = False
    for outcome in report.outcomes:
        if outcome.changed or verbose or outcome.decision.action in (decision.Action.HOLD, decision.Action.WAIT):
            mark = f" [{outcome.committed[:8]}]" if outcome.committed else " (dry run)" if dry_run else ""
            click.echo(outcome.line() + mark)
            shown = shown or outcome.decision.action is not decision.Action.NOTHING
    if idle and not shown and not report.problems and not report.failed_envs:
        click.echo(_nothing_due(report))
    for problem in report.problems:
        click.echo(redact(problem.format()), err=True)
    for env, error in report.failed_envs.items():
        click.echo(redact(f"error: environment {env}: {error}"), err=True)


def _nothing_due(report: bot.TickReport) -> str:
    """``nothing due; next check: dev/books at T (in 4m30s), ...``, soonest first, or why no
    check will come."""
    if not report.outcomes:
        return "nothing due: no rollout (no app with a `rollout` block matches)"
    now = bot.utcnow()
    due = sorted(((when, o) for o in report.outcomes if o.item is not None
                  for when in [decision.next_check(o.item.rollout, o.old)] if when is not None), key=lambda d: d[0])
    if not due:
        return "nothing due: no rollout is progressing (" + "; ".join(
            f"{o.env}/{o.app}: {o.decision.reason}" for o in report.outcomes) + ")"

    def when_text(when: datetime) -> str:
        if when <= now:
            return "now"
        return f"at {decision.format_time(when)} (in {history.format_span((when - now).total_seconds())})"
    return "nothing due; next check: " + ", ".join(f"{o.env}/{o.app} {when_text(when)}" for when, o in due)


def _seconds(option: str, text: str) -> float | None:
    try:
        seconds = decision.parse_duration(text) if text not in ("0", "none") else 0
    except ValueError as e:
        fail(UsageError(f"{option}: {e}"))
    return seconds or None


def _tick(ctx: Context, envs: tuple[str, ...], apps: tuple[str, ...], dry_run: bool, push: bool,
          prometheus_url: str | None, deadline: float | None) -> bot.TickReport:
    report = run(bot.tick, ctx.root, envs=list(envs), apps=list(apps), dry_run=dry_run, push=push,
                 prometheus=prometheus_url, deadline=deadline if deadline else float("inf"))
    _print(report, ctx.verbose, dry_run, idle=True)
    if ctx.verbose:
        click.echo(f"{len(report.outcomes)} rollouts, {len(report.commits)} commits, {report.queries} queries, "
                   f"{report.seconds:.2f} s")
    return report


@rollout.command()
@verbose_option
@_env
@click.option("--app", "apps", multiple=True, metavar="A", help="Only this app (repeatable).")
@click.option("--dry-run", is_flag=True, help="Decide and print; write, commit and notify nothing.")
@_push
@_prometheus
@_deadline
@pass_ctx
def step(ctx: Context, envs: tuple[str, ...], apps: tuple[str, ...], dry_run: bool, push: bool,
         prometheus_url: str | None, deadline: str | None) -> None:
    """One analysis tick: check, then commit a step, a failed check or a rollback (a hold commits nothing)."""
    report = _tick(ctx, envs, apps, dry_run, push, prometheus_url,
                   _seconds("--deadline", deadline) if deadline else deadline_mod.DEFAULT_SECONDS)
    if report.failed_envs:
        sys.exit(PrometheusError.exit_code)
    if report.problems:
        sys.exit(1)


@rollout.command("run")
@verbose_option
@_env
@click.option("--app", "apps", multiple=True, metavar="A", help="Only this app (repeatable).")
@click.option("--every", default="30s", show_default=True, metavar="DURATION", help="Time between ticks.")
@_push
@_prometheus
@_deadline
@pass_ctx
def run_(ctx: Context, envs: tuple[str, ...], apps: tuple[str, ...], every: str, push: bool,
         prometheus_url: str | None, deadline: str | None) -> None:
    """Tick for ever; Ctrl-C stops between ticks (twice: at once). Safe to run in several places.

    A tick that fails because of an outside system (Prometheus, the git remote, the deadline)
    is reported and the next one runs on schedule; invalid specs stop it (exit 1).
    """
    try:
        seconds = decision.parse_duration(every)
    except ValueError as e:
        fail(UsageError(f"--every: {e}"))
    # a tick ends well before the next one is due
    limit = _seconds("--deadline", deadline) if deadline else min(deadline_mod.DEFAULT_SECONDS,
                                                                            max(5.0, 0.8 * seconds))
    stop = threading.Event()

    def interrupt(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping after this tick (Ctrl-C again to stop now)", err=True)

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        while not stop.is_set():
            try:
                report = bot.tick(ctx.root, envs=list(envs), apps=list(apps), push=push, prometheus=prometheus_url,
                                  deadline=limit if limit else float("inf"))
                _print(report, ctx.verbose)
            except OutsideError as e:
                click.echo(redact(f"error: {e}"), err=True)
            except MeshgenError as e:
                fail(e)
            stop.wait(seconds)
    finally:
        signal.signal(signal.SIGINT, previous)
    click.echo("stopped", err=True)


@rollout.command()
@_env
@click.option("--app", "apps", multiple=True, metavar="A", help="Only this app (repeatable).")
@pass_ctx
def status(ctx: Context, envs: tuple[str, ...], apps: tuple[str, ...]) -> None:
    """A table of every rollout: phase, weights, step, last check and its metric values; then
    each promotion pipeline: `books v1 -> v2: dev ✓ 100 % → staging 50 % → [prod-eu 10 % | prod-us 10 %]`
    (a wave in brackets); then each environment that its promotion windows close now."""
    rows = run(bot.read_statuses, ctx.root, list(envs), list(apps))
    if not rows:
        click.echo("no rollouts match --env/--app" if envs or apps else "no rollouts: no app has a `rollout` block")
        return
    _status_table(rows)
    shown = sorted({app for _, app, _, _ in rows})
    for app, _, stages in run(bot.read_pipelines, ctx.root, shown):
        click.echo(promotion.format_stages(app, stages))
    for env, state in run(bot.read_windows, ctx.root, list(envs)).items():
        click.echo(f"{env}: {state.reason}; nothing starts, steps or is promoted there, rollbacks still happen")
    for problem in run(bot.status_problems, ctx.root, list(envs), list(apps)):
        click.echo(redact(problem.format()), err=True)


def _status_table(rows: list) -> None:
    table = Table(title="rollouts")
    for column in ("app", "env", "phase", "weights", "step", "failed"):  # short: never broken
        table.add_column(column, no_wrap=True)
    for column in ("last check", "metrics"):  # these give way on a narrow terminal
        table.add_column(column, overflow="fold")
    for env, app, spec, st in rows:
        if not st or st.get("stable") != spec.stable or st.get("canary") != spec.canary:
            table.add_row(app, env, "Pending", f"{spec.stable} -> {spec.canary}", "-", "-", "-", "")
            continue
        weight = int(st.get("canaryWeight", 0))
        split = f"{st['stable']} {100 - weight} % / {st['canary']} {weight} %"
        index = int(st.get("stepIndex", -1))
        step_ = f"{index + 1}/{len(spec.steps)}" if index >= 0 else f"0/{len(spec.steps)}"
        last = st.get("lastCheck") or {}
        checked = f"{last.get('time', '')} {last.get('verdict', '')}".strip() or "-"
        seen = st.get("applied") or {}
        if seen.get("weight") == weight and seen.get("time"):
            checked += f"; {weight} % applied {seen['time']}"
        elif st.get("phase") == decision.PROGRESSING and spec.policy != "time":
            checked += f"; {weight} % not yet seen applied"
        table.add_row(app, env, str(st.get("phase")), split, step_,
                      f"{st.get('failedChecks', 0)}/{spec.failure_limit}", checked,
                      decision.format_metrics(last.get("metrics") or {}))
    if out_console.is_terminal or os.environ.get("COLUMNS"):
        out_console.print(table)
    else:  # piped, no width asked for: as wide as the table needs, never wrapped at rich's 80
        options = out_console.options.update(max_width=1 << 16)
        width, out_console.width = out_console.width, Measurement.get(out_console, options, table).maximum
        try:  # Console.print(width=) cannot exceed the console's own width
            out_console.print(table)
        finally:
            out_console.width = width


def _steer_command(name: str, help_text: str) -> click.Command:
    @click.argument("app")
    @_env
    @_push
    @pass_ctx
    def command(ctx: Context, app: str, envs: tuple[str, ...], push: bool) -> None:
        report = run(bot.steer, ctx.root, name, app, envs=list(envs), push=push)
        _print(report, verbose=False)

    command.__doc__ = help_text
    return rollout.command(name)(command)


_steer_command("pause", "Pause APP's rollout: weights stay, no analysis until resume (a commit).")
_steer_command("resume", "Resume APP's paused rollout, or restart a rolled-back one from the first step (a commit).")
_steer_command("abort", "Roll APP's canary back to 0 % now (a commit).")
_steer_command("promote", "Send 100 % to APP's canary now, without analysis (a commit).")


@rollout.command()
@click.argument("app")
@click.option("--env", "env", required=True, metavar="E", help="The environment whose approval the pipeline waits for.")
@_push
@pass_ctx
def approve(ctx: Context, app: str, env: str, push: bool) -> None:
    """Approve APP's canary in environment E of its promotion pipeline (a commit; you, its git
    author, are the approver). The pair starts there once the environment before it has
    succeeded and soaked."""
    report = run(bot.approve, ctx.root, app, env, push=push)
    _print(report, verbose=False)


# --- looking back -------------------------------------------------------------------------

_output = click.option("--output", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
                       help="json: one document for tools.")


def _moment(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return history.parse_moment(text, bot.utcnow())
    except ValueError as e:
        fail(UsageError(f"{option}: {e}"))


@rollout.command("history")
@click.argument("app", required=False)
@_env
@click.option("--since", metavar="T", default=None,
              help="Only rollouts with an event at or after T (RFC 3339, a date, or a time ago: 24h, 7d).")
@_output
@pass_ctx
def history_(ctx: Context, app: str | None, envs: tuple[str, ...], since: str | None, output: str) -> None:
    """Every rollout's timeline from git: start, steps, checks and their metric values, holds,
    rollbacks, success, and steering by hand with its author."""
    found = run(bot_history.read_history, ctx.root, app=app, envs=list(envs), since=_moment("--since", since))
    if output == "json":
        click.echo(_rollouts_json(found))
        return
    if not found:
        what = " ".join(filter(None, [app, f"in {', '.join(envs)}" if envs else "",
                                      f"since {since}" if since else ""]))
        click.echo(f"no rollout history{' for ' + what if what else ''}: no commit changed a status file")
        return
    lines = []  # written at once: one write per line would cost a system call each
    for timeline in found:
        lines.append(_timeline_heading(timeline))
        lines.extend(_event_line(event) for event in timeline.events)
        lines.append("")
    click.echo("\n".join(lines))


def _rollouts_json(found: list[history.Timeline]) -> str:
    """``{"rollouts": [...]}`` with one rollout to a line (every event in it): the json module's
    C encoder writes each line, where ``indent`` would send the whole document through its
    pure-Python encoder, several times slower on a long history."""
    if not found:
        return '{"rollouts": []}'
    return '{"rollouts": [\n' + ",\n".join(json.dumps(t.to_json()) for t in found) + "\n]}"


def _timeline_heading(timeline: history.Timeline) -> str:
    ended = timeline.ended
    span = (f"{decision.format_time(timeline.started)} .. {decision.format_time(ended)} "
            f"({history.format_span((ended - timeline.started).total_seconds())})" if ended
            else f"since {decision.format_time(timeline.started)}")
    where = f"{timeline.env}, group {timeline.group}" if timeline.group else timeline.env
    return (f"{timeline.app} ({where}): {timeline.stable} -> {timeline.canary}, "
            f"{timeline.phase} at {timeline.last.weight} %, {span}")


def _event_line(event: history.Event) -> str:
    weights = (f"{event.weight_before:>3} -> {event.weight:>3} %" if event.weight != event.weight_before
               else f"{'at':>6} {event.weight:>3} %")
    what = ""
    if event.check:
        values = decision.format_metrics(event.check.get("metrics") or {})
        what = f"{event.check.get('verdict')}: {event.check.get('reason', '')}".rstrip(": ")
        if values:
            what += f" ({values})"
        for name, result in (event.check.get("dryRun") or {}).items():
            what += f"; dry run {name}: {result.get('verdict')}"
    elif event.message:
        what = event.message
    return (f"  {decision.format_time(event.time)}  {event.kind:<12} {weights}  {event.commit[:8]}  "
            f"{event.author}: {what}").rstrip()


@rollout.command("backtest")
@click.argument("app")
@click.option("--env", "env", required=True, metavar="E", help="The environment whose rollout block and Prometheus to use.")
@click.option("--from", "start", required=True, metavar="T", help="Start of the span (RFC 3339, a date, or a time ago: 24h).")
@click.option("--to", "end", default="now", show_default=True, metavar="T", help="End of the span.")
@click.option("--interval", default=None, metavar="D",
              help="Override the rollout's interval: the analysis window and the time between ticks (e.g. 1m).")
@click.option("--steps", default=None, metavar="W,W,...", help="Override the steps, percent (e.g. 10,50,100).")
@click.option("--policy", type=click.Choice(["time", "health", "metric", "compare"]), default=None,
              help="Override the policy.")
@click.option("--min-requests", type=click.IntRange(min=0), default=None, help="Override analysis.minRequests.")
@click.option("--failure-limit", type=click.IntRange(min=1), default=None, help="Override analysis.failureLimit.")
@_output
@_prometheus
@pass_ctx
def backtest(ctx: Context, app: str, env: str, start: str, end: str, interval: str | None, steps: str | None,
             policy: str | None, min_requests: int | None, failure_limit: int | None, output: str,
             prometheus_url: str | None) -> None:
    """What the bot would have done to APP's rollout over past metrics: one range query per
    metric for the span, then the bot's own decision at every interval."""
    begin, finish = _moment("--from", start), _moment("--to", end)
    weights = None
    if steps is not None:
        try:
            weights = [int(part) for part in steps.split(",") if part.strip()]
        except ValueError:
            fail(UsageError(f"--steps: {steps!r} is not a comma-separated list of percents like 10,50,100"))
    overrides = {"interval": interval, "steps": weights, "policy": policy, "minRequests": min_requests,
                 "failureLimit": failure_limit}
    replay = run(bot_backtest.run_backtest, ctx.root, app, env, begin, finish, overrides=overrides,
                 prometheus=prometheus_url)
    if output == "json":
        click.echo(json.dumps(dict(replay.to_json(), app=app, env=env), indent=2))
        return
    r = replay.rollout
    ticks = int((replay.end - replay.start).total_seconds() // replay.interval) + 1
    click.echo(f"backtest of {app} ({env}): {r.stable} -> {r.canary}, policy {r.policy}, steps "
               f"{', '.join(map(str, r.steps))} every {r.interval_text}; {decision.format_time(replay.start)} .. "
               f"{decision.format_time(replay.end)} ({ticks} ticks, {len(replay.queries)} range queries)")
    for group in _grouped(replay.ticks):
        first, last = group[0], group[-1]
        kind = {"fail_count": "failed-check"}.get(first.action.value, first.action.value)
        if len(group) > 1:
            kind = f"{kind} x{len(group)}"
        weights_text = (f"{first.weight_before:>3} -> {last.weight:>3} %" if last.weight != first.weight_before
                        else f"{'at':>6} {last.weight:>3} %")
        until = f" (until {decision.format_time(last.time)})" if len(group) > 1 else ""
        click.echo(f"  {decision.format_time(first.time)}  {kind:<12} {weights_text}  {last.reason}{until}")
    if replay.ended and replay.phase == decision.SUCCEEDED:
        click.echo(f"would have reached 100 % after {history.format_span(replay.seconds or 0)}, "
                   f"at {decision.format_time(replay.ended)}")
    elif replay.ended:
        click.echo(f"would have rolled back after {history.format_span(replay.seconds or 0)}, "
                   f"at {decision.format_time(replay.ended)}")
    elif replay.ticks:
        click.echo(f"still {replay.phase} at {replay.weight} % when the span ends")
    else:
        click.echo("nothing happened in the span")


def _grouped(ticks: list) -> list[list]:
    """Consecutive holds as one group; every other tick alone."""
    groups: list[list] = []
    for tick in ticks:
        if groups and tick.action is decision.Action.HOLD and groups[-1][-1].action is decision.Action.HOLD \
                and tick.weight == groups[-1][-1].weight:
            groups[-1].append(tick)
        else:
            groups.append([tick])
    return groups
