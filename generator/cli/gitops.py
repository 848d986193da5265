"""``meshgen diff`` and ``meshgen publish``: the command-line side of the GitOps loop.

Each command calls one library function (:func:`generator.gitops.diff.diff_repo`,
:func:`generator.gitops.publish.publish_repo`); errors become messages and exit codes in
:func:`generator.cli.base.run`.
"""

from __future__ import annotations

import click

from generator.cli import base as cli
from generator.errors import redact
from generator.gitops import diff as diff_mod
from generator.gitops import publish as publish_mod


@click.command()
@click.option("--base", metavar="REF",
              help="Compare with this commit, branch or tag (default: where this branch left "
                   "its upstream or main, i.e. what a pull request shows; HEAD on main itself).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown"]), default="text", show_default=True,
              help="markdown is ready to post as a pull-request comment.")
@cli.pass_ctx
def diff(ctx: cli.Context, base: str | None, fmt: str) -> None:
    """Show what a change does to the rendered output: a summary, then the YAML diff."""
    result = cli.run(diff_mod.diff_repo, ctx.root, base)
    text = diff_mod.format_markdown(result) if fmt == "markdown" else diff_mod.format_text(result)
    click.echo(text, nl=False)


@click.command()
@click.option("--to", "to", required=True, metavar="REPO_URL", help="Target repository (URL or path).")
@click.option("--branch", required=True, metavar="B", help="Target branch (created when missing).")
@click.option("--path", metavar="P", default=None,
              help="Directory in the target that receives <env>/ (default: rendered; '.', the root, only "
                   "with --env: never the whole branch).")
@click.option("--env", "envs", multiple=True, metavar="E", help="Publish only this environment (repeatable).")
@cli.pass_ctx
def publish(ctx: cli.Context, to: str, branch: str, path: str | None, envs: tuple[str, ...]) -> None:
    """Commit the rendered output into a deploy repository or environment branch, and push."""
    result = cli.run(publish_mod.publish_repo, ctx.root, to=to, branch=branch, path=path,
                     envs=list(envs) or None)
    shown = redact(to)
    if result.commit is None:
        click.echo(f"nothing to publish: {shown} {branch} already holds this output")
        return
    retried = f" (after {result.attempts} attempts; the branch had moved)" if result.attempts > 1 else ""
    click.echo(f"published {result.files} files to {shown} {branch} as {result.commit[:7]}{retried}")
