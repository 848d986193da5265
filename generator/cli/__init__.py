"""The ``meshgen`` command line (DESIGN §4). It holds no logic: each command calls one library
function, and :func:`generator.cli.base.run` maps meshgen's errors to messages and exit codes.

``meshgen = generator.cli:main`` is the entry point. The commands live by concern:
:mod:`generator.cli.render` (render, check, validate, init), :mod:`generator.cli.explain`,
:mod:`generator.cli.gitops` (diff, publish), :mod:`generator.cli.rollout` and
:mod:`generator.cli.importer` (import).
"""

from __future__ import annotations

from pathlib import Path

import click

from generator import __version__
from generator.cli import explain, gitops, importer, render, report, rollout
from generator.cli.base import Context, setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "--root", type=click.Path(file_okay=False, path_type=Path), default=".",
              help="Config repository root (default: the current directory).")
@click.option("-v", "--verbose", is_flag=True, help="Say what is done, file by file.")
@click.version_option(__version__, prog_name="meshgen")
@click.pass_context
def main(ctx: click.Context, root: Path, verbose: bool) -> None:
    """Render app specs into Istio YAML in git, and roll out canaries by git commits."""
    setup_logging()
    ctx.obj = Context(root, verbose)


for command in (render.render, render.check, render.validate, render.init, explain.explain,
                gitops.diff, gitops.publish, rollout.rollout, report.report, importer.import_):
    main.add_command(command)
