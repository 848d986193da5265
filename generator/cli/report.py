"""``meshgen report``: the static site of the mesh and its rollouts (:mod:`generator.report.site`)."""

from __future__ import annotations

from pathlib import Path

import click

from generator.bot import bot
from generator.cli.base import Context, fail, pass_ctx, run
from generator.errors import UsageError
from generator.report import site


@click.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="The site's folder (created); open DIR/index.html.")
@click.option("--backtest", is_flag=True,
              help="Beside each rollout, draw what the app's current policy would have done on the same metrics "
                   "(asks Prometheus).")
@click.option("--commit-url", metavar="URL", default=None,
              help="Link each commit here, {sha} replaced (e.g. https://github.com/OWNER/REPO/commit/{sha}); "
                   "default: its entry on the rollout's page.")
@click.option("--prometheus-url", metavar="URL", default=None,
              help=f"With --backtest: query this Prometheus (default: ${bot.PROMETHEUS_URL_ENV}, "
                   "else each environment's spec.prometheus.url).")
@pass_ctx
def report(ctx: Context, out: Path, backtest: bool, commit_url: str | None, prometheus_url: str | None) -> None:
    """Write a static, offline site: each environment's routes and traffic split, the rollouts
    in progress, and a page per rollout with its weight and metrics charted from git."""
    if commit_url is not None and "{sha}" not in commit_url:
        fail(UsageError(f"--commit-url {commit_url!r} has no {{sha}} to replace"))
    written = run(site.write_report, ctx.root, out, backtest=backtest, prometheus=prometheus_url,
                  commit_url=commit_url)
    for skipped in written.skipped:
        click.echo(f"no backtest for {skipped}", err=True)
    extra = f", {written.backtests} backtests" if backtest else ""
    pages = len(written.pages)
    click.echo(f"wrote {pages} page{'s' if pages != 1 else ''} ({len(written.timelines)} rollouts{extra}): "
               f"{written.index}")
