"""The ``meshgen`` command line (DESIGN §4). It holds no logic: each command calls one library
function, and :func:`run` maps meshgen's errors to messages and exit codes in one place:
0 success, 1 invalid input or failed check, 2 usage error, 3 an outside system failed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import click
from rich.console import Console

from generator import __version__, errors

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


def fail(error: errors.MeshgenError) -> NoReturn:
    """Print an error (every spec error on its own line) and exit with its code."""
    if isinstance(error, errors.SpecErrors):
        for e in error.errors:
            click.echo(e.format(), err=True)
        n = len(error.errors)
        click.echo(f"{n} error{'s' if n != 1 else ''}", err=True)
    elif isinstance(error, errors.SpecError):
        click.echo(error.format(), err=True)
    else:
        click.echo(f"error: {error}", err=True)
    sys.exit(error.exit_code)


def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; a :class:`~generator.errors.MeshgenError` becomes a message and an exit code."""
    try:
        return fn(*args, **kwargs)
    except errors.MeshgenError as e:
        fail(e)


class Context:
    """Options shared by every command."""

    def __init__(self, root: Path, verbose: bool) -> None:
        self.root = root
        self.verbose = verbose


pass_ctx = click.make_pass_decorator(Context)


def verbose_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``-v/--verbose`` on a command too, so ``meshgen render --verbose`` works like ``meshgen -v render``."""

    def enable(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(Context).verbose = True

    return click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=enable,
                        help="Say what is done, file by file.")(fn)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "--root", type=click.Path(file_okay=False, path_type=Path), default=".",
              help="Config repository root (default: the current directory).")
@click.option("-v", "--verbose", is_flag=True, help="Say what is done, file by file.")
@click.version_option(__version__, prog_name="meshgen")
@click.pass_context
def main(ctx: click.Context, root: Path, verbose: bool) -> None:
    """Render app specs into Istio YAML in git, and roll out canaries by git commits."""
    ctx.obj = Context(root, verbose)


def _progress() -> tuple[Any, Callable[[int, int], None] | None]:
    """A rich progress bar on stderr for long renders (only on a terminal)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True)
    task = bar.add_task("render", total=None)

    def update(done: int, total: int) -> None:
        if total >= 200:
            if not bar.live.is_started:
                bar.start()
            bar.update(task, completed=done, total=total)

    return bar, update


@main.command()
@verbose_option
@click.option("--env", "envs", multiple=True, metavar="E", help="Render only this environment (repeatable).")
@pass_ctx
def render(ctx: Context, envs: tuple[str, ...]) -> None:
    """Write rendered/ for every (or the named) environment."""
    from generator import output, render as render_mod

    bar, progress = _progress()
    try:
        rendering = run(render_mod.render_repo, ctx.root, list(envs), progress=progress)
    finally:
        if bar is not None and bar.live.is_started:
            bar.stop()
    changes = run(output.write_rendering, ctx.root, rendering)
    if ctx.verbose:
        for path in changes.written:
            click.echo(f"wrote   {path}")
        for path in changes.deleted:
            click.echo(f"deleted {path}")
    click.echo(f"rendered {len(rendering.envs)} environment{'s' if len(rendering.envs) != 1 else ''}, "
               f"{len(rendering.objects)} objects: {len(changes.written)} written, "
               f"{len(changes.deleted)} deleted, {len(changes.unchanged)} unchanged")


def _analyze(rendering: Any) -> None:
    """Cross-object analysis: print warnings, exit 1 on errors (every one listed)."""
    from generator import analysis

    findings = analysis.analyze(rendering)
    for warning in [f for f in findings if f.level != "error"]:
        click.echo(warning.format(), err=True)
    if analysis.errors_of(findings):
        fail(errors.SpecErrors(analysis.errors_of(findings)))


@main.command()
@pass_ctx
def validate(ctx: Context) -> None:
    """Validate specs and the objects they render (Istio's schemas included); all errors at once."""
    from generator import render as render_mod

    rendering = run(render_mod.render_repo, ctx.root, strict=True)
    _analyze(rendering)
    click.echo(f"valid: {_count(len(rendering.repo.apps), 'app')}, {_count(len(rendering.envs), 'environment')}, "
               f"{_count(len(rendering.objects), 'object')}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@main.command()
@pass_ctx
def check(ctx: Context) -> None:
    """Validate (cross-object analysis included), and fail if rendered/ is stale (for CI and pre-commit)."""
    from generator import output, render as render_mod

    rendering = run(render_mod.render_repo, ctx.root)
    _analyze(rendering)
    stale = output.stale_files(ctx.root, rendering)
    if stale:
        for path in stale:
            click.echo(f"{path}: error: stale; it differs from what the specs render", err=True)
        click.echo(f"{len(stale)} stale file{'s' if len(stale) != 1 else ''} under "
                   f"{rendering.rendered_dir}/: run `meshgen render` and commit the result", err=True)
        sys.exit(errors.CheckFailed.exit_code)
    click.echo(f"up to date: {len(rendering.files)} files under {rendering.rendered_dir}/")


@main.command()
@verbose_option
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def init(ctx: Context, directory: Path) -> None:
    """Scaffold a config repository in DIRECTORY (which must be empty or absent)."""
    from generator import scaffold

    created = run(scaffold.init, directory)
    if ctx.verbose:
        for path in created:
            click.echo(f"created {path}")
    click.echo(f"initialised {directory}: {len(created)} files; edit apps/ and environments/, "
               f"then run `meshgen render`")


from generator.cli_explain import explain  # noqa: E402  (registers below; imports this module)
main.add_command(explain)
from generator import cli_gitops  # noqa: E402  (commands defined after main)
main.add_command(cli_gitops.diff)
main.add_command(cli_gitops.publish)
from generator.cli_rollout import rollout as _rollout  # noqa: E402  (registers `meshgen rollout`)
main.add_command(_rollout)
