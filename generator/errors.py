"""meshgen's error tree.

Every error meshgen raises descends from :class:`MeshgenError`. Each kind carries the
process exit code the command line maps it to (DESIGN §4): 1 for invalid input or a
failed check, 3 for an outside system (git remote, Prometheus, a webhook) that failed.
Errors of outside libraries (httpx, GitPython) are wrapped into these types by the one
module that talks to that system, always ``raise ... from e``, so they never leak.

Spec errors carry their place -- ``path:line:column`` of the offending YAML node, lines and
columns 1-based -- so the command line can print them as compilers do::

    apps/ratings.yaml:12:7: error: weights of route 'default' sum to 90, not 100
"""

from __future__ import annotations

import errno
import json
import re
from dataclasses import dataclass, field
from typing import Iterable


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_][-A-Za-z0-9_./]*")


def as_yaml(value: object) -> str:
    """A value echoed in a message as YAML writes it inline, so a spec's author reads it in
    the words of the file: ``null``, ``true``/``false``, numbers (``.inf``, ``.nan``), text in
    single quotes (a ``'`` doubled, YAML 1.2 §7.3.2; text with control characters in double
    quotes with escapes, §7.3.1), lists as flow sequences ``[a, b]``, mappings as flow
    mappings ``{key: value}`` (plain keys unquoted).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if any(not c.isprintable() for c in value):
            return json.dumps(value, ensure_ascii=False)
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(as_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k if isinstance(k, str) and _PLAIN_KEY.fullmatch(k) else as_yaml(k)}: {as_yaml(v)}"
                               for k, v in value.items()) + "}"
    return as_yaml(str(value))


@dataclass(frozen=True, order=True)
class Place:
    """Where a spec value came from: a file path and a 1-based line and column."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line:
            return f"{self.path}:{self.line}:{self.column}"
        return self.path

    def shifted(self, columns: int) -> "Place":
        """The place ``columns`` characters to the right on the same line."""
        return Place(self.path, self.line, self.column + columns)


class MeshgenError(Exception):
    """Root of all meshgen errors. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


@dataclass
class SpecError(MeshgenError):
    """One invalid spec value.

    Attributes:
        message: what is wrong, in one sentence.
        place: where (file, line, column); ``None`` when no file is involved.
        hint: what to do about it (optional, appended as "; hint").
    """

    message: str
    place: Place | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.format())

    def format(self) -> str:
        """``path:line:col: error: message (hint)``."""
        where = f"{self.place}: " if self.place else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}error: {self.message}{hint}"

    def sort_key(self) -> tuple:
        return (self.place or Place(""), self.message)


@dataclass
class SpecErrors(MeshgenError):
    """All spec errors of one run, reported at once (exit 1)."""

    errors: list[SpecError] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.errors = sorted(self.errors, key=SpecError.sort_key)
        super().__init__("\n".join(e.format() for e in self.errors))

    @classmethod
    def collect(cls, errors: Iterable[SpecError]) -> None:
        """Raise ``SpecErrors`` if ``errors`` is non-empty."""
        errs = list(errors)
        if errs:
            raise cls(errs)


class CheckFailed(MeshgenError):
    """A check found a problem that is not a spec error (e.g. stale ``rendered/``): exit 1."""


class UsageError(MeshgenError):
    """The command line was used wrongly: exit 2."""

    exit_code = 2


class OutsideError(MeshgenError):
    """An outside system failed (git remote, Prometheus, webhook): exit 3.

    ``temporary`` says whether retrying later may help.
    """

    exit_code = 3
    temporary = True


class GitError(OutsideError):
    """A git operation failed (push rejected too often, remote unreachable, ...)."""


class PrometheusError(OutsideError):
    """The Prometheus HTTP API could not be queried or answered with an error."""


#: ``errno`` values of a write refused for want of space: a full disk, or a quota reached.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFull(MeshgenError):
    """A file could not be written for want of space (``ENOSPC``, or ``EDQUOT``: a quota): exit 1.

    Nothing is half-written: meshgen writes each file to a temporary beside it and renames it
    (:func:`generator.render.output.atomic_write`), and removes the temporary when that fails.

    Args:
        path: the file that could not be written, as the user knows it.
        hint: what to do (default: free space and run the command again).
    """

    def __init__(self, path: str, hint: str = "free space on that disk, then run the command again") -> None:
        self.path = path
        super().__init__(f"cannot write {path}: no space left on device; nothing was half-written (hint: {hint})")


class DiskFullOutside(DiskFull, OutsideError):
    """:class:`DiskFull` in a command that works for an outside system -- the rollout bot's
    tick, ``publish``'s clone of the target -- where it is an outside failure (exit 3; ``rollout
    run`` goes on with the next tick, which may find space again)."""

    exit_code = 3


class DeadlineExceeded(OutsideError):
    """An outside system did not answer within its time budget (a request's timeout or the
    rollout tick's overall deadline): exit 3."""


_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s?#]+)@")
_SECRET_PARAMS = re.compile(
    r"(?P<key>[?&;](?:[a-z0-9_.-]*(?:token|secret|password|passwd|pass|key|auth|signature|sig|credential)s?))"
    r"=(?P<value>[^&#\s'\"]+)", re.IGNORECASE)
REDACTED = "***"


def redact(text: str) -> str:
    """``text`` with the secrets of every URL in it masked: the userinfo
    (``https://user:password@host`` becomes ``https://***@host``) and the values of query
    parameters that name a token, key, secret, password or signature (``?access_token=***``).

    Every message meshgen prints or logs goes through it (the CLI's error path and the log
    handler), so a credential in ``MESHGEN_PROMETHEUS_URL`` or a ``--to`` URL is never shown.
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _SECRET_PARAMS.sub(lambda m: f"{m['key']}={REDACTED}", text)


class GitTimeout(DeadlineExceeded, GitError):
    """A git network operation (fetch, push) did not finish within its timeout (exit 3)."""
