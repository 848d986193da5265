"""``meshgen import``: Istio YAML in, app specs (and environment overrides) out."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from generator import errors
from generator.cli.base import Context, pass_ctx, run


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--env", metavar="ENV", help="Import into this environment: an app that has a spec already "
              "gets what differs as ENV's override (environments/ENV.yaml spec.apps.<app>).")
@click.option("--force", is_flag=True, help="Overwrite an existing spec (or the app's override in ENV).")
@click.option("--namespace", "-n", default="default", show_default=True, metavar="NS",
              help="Namespace of objects that name none.")
@pass_ctx
def import_(ctx: Context, paths: tuple[Path, ...], env: str | None, force: bool, namespace: str) -> None:
    """Import Istio VirtualService, DestinationRule, Gateway and ServiceEntry objects (files or
    directories of YAML, or - for standard input; several documents, kind: List and kubectl get
    -o yaml output) as app
    specs. One line per object: where it went, or why it cannot be expressed. Exit 1 when
    some object was not imported (the others are written all the same)."""
    from generator.importer import write

    report = run(write.import_paths, ctx.root, list(paths), env=env, force=force, namespace=namespace)
    for line in report.lines:
        if line.error is None:
            click.echo(line.format())
        else:
            click.echo(errors.redact(line.format()), err=True)
    for note in report.notes:
        click.echo(f"note: {note}")
    done = sum(1 for line in report.lines if line.error is None)
    failed = len(report.lines) - done
    summary = f"{done} imported, {failed} not imported; wrote {len(report.written)} file{'s' if len(report.written) != 1 else ''}"
    if failed:
        click.echo(summary, err=True)
        sys.exit(errors.SpecErrors.exit_code)
    click.echo(summary)
