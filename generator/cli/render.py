"""``meshgen render``, ``check``, ``validate`` and ``init``: the spec-to-YAML side of the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import click

from generator import errors
from generator.cli.base import Context, fail, pass_ctx, run, verbose_option


def _progress() -> tuple[Any, Callable[[int, int], None] | None]:
    """A rich progress bar on stderr for long renders (only on a terminal)."""
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from generator.cli.base import err_console

    bar = Progress(TextColumn("rendering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err_console, transient=True)
    task = bar.add_task("render", total=None)

    def update(done: int, total: int) -> None:
        if total >= 200:
            if not bar.live.is_started:
                bar.start()
            bar.update(task, completed=done, total=total)

    return bar, update


@click.command()
@verbose_option
@click.option("--env", "envs", multiple=True, metavar="E", help="Render only this environment (repeatable).")
@pass_ctx
def render(ctx: Context, envs: tuple[str, ...]) -> None:
    """Write rendered/ for every (or the named) environment."""
    from generator.render import cache, output

    # nothing changed: the cached rendering, without importing the renderer (a no-op's cost is
    # interpreter start-up, the cache key and comparing files)
    rendering = run(cache.cached, ctx.root, list(envs))
    if rendering is None:
        from generator.render import render as render_mod

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
               f"{rendering.object_count} objects: {len(changes.written)} written, "
               f"{len(changes.deleted)} deleted, {len(changes.unchanged)} unchanged")


def _analyze(rendering: Any, route_tests: bool = False) -> None:
    """Cross-object analysis (and the specs' route tests for ``check``): print warnings, exit 1
    on errors (every one listed)."""
    from generator.render import analysis, routetests

    findings = analysis.analyze(rendering)
    for warning in [f for f in findings if f.level != "error"]:
        click.echo(warning.format(), err=True)
    failed = analysis.errors_of(findings) + (routetests.check(rendering) if route_tests else [])
    if failed:
        fail(errors.SpecErrors(failed))


@click.command()
@pass_ctx
def validate(ctx: Context) -> None:
    """Validate specs and the objects they render against their CRDs (Istio's, Gateway API's); all errors at once."""
    from generator.render import render as render_mod

    rendering = run(render_mod.render_repo, ctx.root, strict=True)
    _analyze(rendering)
    click.echo(f"valid: {_count(len(rendering.repo.apps), 'app')}, {_count(len(rendering.envs), 'environment')}, "
               f"{_count(len(rendering.objects), 'object')}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@click.command()
@pass_ctx
def check(ctx: Context) -> None:
    """Validate (cross-object analysis and the specs' route tests included), and fail if rendered/ is stale or holds a temporary an interrupted write left (for CI and pre-commit)."""
    from generator.render import output
    from generator.render import render as render_mod

    rendering = run(render_mod.render_repo, ctx.root)
    _analyze(rendering, route_tests=True)
    stale = run(output.stale_files, ctx.root, rendering)
    left = output.temporaries(ctx.root, rendering.rendered_dir)
    for path in left:
        click.echo(f"{path}: error: a temporary file left by an interrupted write (hint: `meshgen render` "
                   f"removes it, or delete it; never commit it)", err=True)
    if stale:
        for path in stale:
            click.echo(f"{path}: error: stale; it differs from what the specs render", err=True)
        click.echo(f"{len(stale)} stale file{'s' if len(stale) != 1 else ''} under "
                   f"{rendering.rendered_dir}/: run `meshgen render` and commit the result", err=True)
        sys.exit(errors.CheckFailed.exit_code)
    if left:
        click.echo(f"{_count(len(left), 'temporary file')} under {rendering.rendered_dir}/: run `meshgen render`",
                   err=True)
        sys.exit(errors.CheckFailed.exit_code)
    click.echo(f"up to date: {len(rendering.files)} files under {rendering.rendered_dir}/")


@click.command()
@verbose_option
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_ctx
def init(ctx: Context, directory: Path) -> None:
    """Scaffold a config repository in DIRECTORY (which must be empty or absent); unless it is
    inside a git repository already, make it one with a first commit."""
    from generator.gitops import scaffold

    made = run(scaffold.init, directory)
    if ctx.verbose:
        for path in made.files:
            click.echo(f"created {path}")
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {directory}, then "
    if made.commit:
        click.echo(f"initialised {directory}: {len(made.files)} files, a new git repository on branch main "
                   f"with them as its first commit ({made.commit[:7]})")
        commit = 'git commit -am "..." (git add new files first), push it'
    else:
        click.echo(f"initialised {directory}: {len(made.files)} files, inside the git repository at "
                   f"{made.git_root} (not committed)")
        commit = f'git add {directory} && git commit -m "..."; push it'
    click.echo("Next:")
    click.echo(f"  1. {where}edit apps/hello.yaml (or add apps/<name>.yaml) and environments/*.yaml "
               "(cluster, Prometheus)")
    click.echo("  2. meshgen render, then meshgen diff: what your change does to the mesh, in words")
    click.echo(f"  3. {commit}, and let Argo CD or Flux sync rendered/<env> "
               "(`gitops:` in meshgen.yaml writes their manifests)")
