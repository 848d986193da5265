"""The ``meshgen`` command line (DESIGN §4). It holds no logic: each command calls one library
function, and :func:`generator.cli.base.run` maps meshgen's errors to messages and exit codes.

``meshgen = generator.cli:main`` is the entry point. The commands live by concern:
:mod:`generator.cli.render` (render, check, validate, init), :mod:`generator.cli.explain`,
:mod:`generator.cli.gitops` (diff, publish), :mod:`generator.cli.rollout` and
:mod:`generator.cli.importer` (import).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from generator import __version__
from generator.cli.base import Context, setup_logging

#: Each command's module and function, imported only when that command runs (or ``--help``
#: lists them all), so a command does not pay for the others' imports: click's lazily loaded
#: subcommands, https://click.palletsprojects.com/en/stable/complex/#lazily-loading-subcommands
COMMANDS = {
    "render": "render:render", "check": "render:check", "validate": "render:validate", "init": "render:init",
    "explain": "explain:explain", "diff": "gitops:diff", "publish": "gitops:publish",
    "rollout": "rollout:rollout", "report": "report:report", "import": "importer:import_",
}


def _command(name: str) -> click.Command:
    module, attr = COMMANDS[name].split(":")
    return getattr(importlib.import_module(f"generator.cli.{module}"), attr)


class LazyGroup(click.Group):
    """A group whose :data:`COMMANDS` are imported when first asked for; reading ``commands``
    (code that walks the command tree) imports them all."""

    @property
    def commands(self) -> dict[str, click.Command]:
        for name in COMMANDS:
            if name not in self._commands:
                self._commands[name] = _command(name)
        return self._commands

    @commands.setter
    def commands(self, value: dict[str, click.Command]) -> None:
        self._commands = value

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self._commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            return _command(cmd_name)
        return self._commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-C", "--root", type=click.Path(file_okay=False, path_type=Path), default=".",
              help="Config repository root (default: the current directory).")
@click.option("-v", "--verbose", is_flag=True, help="Say what is done, file by file.")
@click.version_option(__version__, prog_name="meshgen")
@click.pass_context
def main(ctx: click.Context, root: Path, verbose: bool) -> None:
    """Render app specs into Istio YAML in git, and roll out canaries by git commits."""
    setup_logging()
    ctx.obj = Context(root, verbose)
