"""What every ``meshgen`` command shares: the consoles, the options context, and :func:`run`,
which maps meshgen's errors to messages and exit codes in one place: 0 success, 1 invalid
input or failed check, 2 usage error, 3 an outside system failed (DESIGN §4).

The command modules import this one, never :mod:`generator.cli` itself, so the package has
no import cycle.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NoReturn

import click

from generator import errors

if TYPE_CHECKING:
    from rich.console import Console

    err_console: Console
    out_console: Console


def __getattr__(name: str) -> Any:
    """``err_console`` and ``out_console``: rich consoles, made (and rich imported) when a
    command first asks for one, so a command that prints plain lines does not pay for rich."""
    if name in ("err_console", "out_console"):
        from rich.console import Console

        console = Console(stderr=name == "err_console", highlight=False, soft_wrap=True)
        globals()[name] = console
        return console
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def fail(error: errors.MeshgenError) -> NoReturn:
    """Print an error (every spec error on its own line, secrets in URLs redacted) and exit with its code."""
    if isinstance(error, errors.SpecErrors):
        for e in error.errors:
            click.echo(errors.redact(e.format()), err=True)
        n = len(error.errors)
        click.echo(f"{n} error{'s' if n != 1 else ''}", err=True)
    elif isinstance(error, errors.SpecError):
        click.echo(errors.redact(error.format()), err=True)
    else:
        click.echo(errors.redact(f"error: {error}"), err=True)
    sys.exit(error.exit_code)


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


class RedactingFilter(logging.Filter):
    """Masks credentials in URLs of every log record (see :func:`generator.errors.redact`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = errors.redact(record.getMessage())
        record.args = None
        return True


def setup_logging() -> None:
    """meshgen's warnings to stderr as ``warning: message``, secrets redacted (once per process)."""
    logger = logging.getLogger("generator")
    if any(isinstance(h, logging.StreamHandler) and getattr(h, "meshgen", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.meshgen = True  # type: ignore[attr-defined]
    handler.setFormatter(_LevelFormatter())
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


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


def lazy_module(name: str) -> types.ModuleType:
    """The module ``name``, executed on its first attribute access rather than now, so a
    command module can name at its top what only some of its commands use, and a command that
    uses none of it does not pay its import (Python's LazyLoader recipe,
    https://docs.python.org/3/library/importlib.html#implementing-lazy-imports). A module
    already imported is returned as it is. ``tests/test_layout.py`` counts these as imports.

    Raises:
        ModuleNotFoundError: no module ``name``.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"no module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module

