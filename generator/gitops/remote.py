"""Git's network operations (ls-remote, fetch, push), each bounded in time and said plainly.

Every command that talks to a remote runs with a total timeout: past it, git and everything it
started (an ssh, a local ``receive-pack`` and its hooks) are killed and
:class:`~generator.errors.GitTimeout` is raised (exit 3). A push is read in ``--porcelain``
form, so a refusal is reported in the remote's own words: its ``[remote rejected] (reason)``
and the ``remote:`` lines a hook printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import git

from generator.errors import GitError, GitTimeout, redact

#: Seconds one network operation may take by default.
DEFAULT_TIMEOUT = 60.0


def run(repo: git.Repo, args: list[str], timeout: float, what: str) -> tuple[int, str, str]:
    """Run ``git ARGS`` in ``repo``; ``(status, stdout, stderr)``.

    Raises:
        GitTimeout: it took longer than ``timeout`` seconds (git was killed).
        GitError: git could not be started.
    """
    started = time.monotonic()
    try:
        status, out, err = repo.git.execute(["git", *args], kill_after_timeout=max(timeout, 0.1),
                                            with_extended_output=True, with_exceptions=False)
    except git.GitCommandError as e:  # started but killed, or not startable
        status, out, err = e.status if isinstance(e.status, int) else -1, "", str(e.stderr or e)
    if status != 0 and (time.monotonic() - started >= timeout or "did not complete in" in (err or "")):
        raise GitTimeout(f"{what} did not finish within {timeout:.3g} s and was stopped")
    return status, out or "", err or ""


def remote_said(stderr: str) -> str:
    """The ``remote:`` lines of git's stderr (what a hook printed), joined on one line."""
    lines = [line[len("remote:"):].strip() for line in stderr.splitlines() if line.startswith("remote:")]
    return redact(" ".join(line for line in lines if line))


def detail(stderr: str) -> str:
    """git's stderr on one line, secrets redacted."""
    return redact(" ".join(stderr.split()))


@dataclass
class PushResult:
    """What a push did.

    Attributes:
        pushed: the branch now holds what was pushed (or already did).
        moved: refused because the branch moved (fetch and try again).
        refused: refused for another reason, in the remote's words (``None`` when not).
    """

    pushed: bool = False
    moved: bool = False
    refused: str | None = None
    lines: list[str] = field(default_factory=list)


#: What a remote says when a concurrent push won the race for the branch.
RACES = ("failed to update ref", "cannot lock ref", "incorrect old value", "failed to lock")


def push(repo: git.Repo, remote: str, refspec: str, timeout: float = DEFAULT_TIMEOUT,
         shown: str | None = None) -> PushResult:
    """``git push --porcelain REMOTE REFSPEC`` (never forced), bounded by ``timeout``.

    ``shown`` names the target in messages (default: ``to <the remote's URL>``).

    Raises:
        GitTimeout: the push took too long (a hook that sleeps, a remote that does not answer).
        GitError: the remote could not be reached.
    """
    if shown is None:
        url = repo.remotes[remote].url if remote in [r.name for r in repo.remotes] else remote
        shown = f"to {redact(url)}"
    status, out, err = run(repo, ["push", "--porcelain", remote, refspec], timeout, f"git push {shown}")
    result = PushResult()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1:
            continue
        flag, summary = parts[0], parts[2].strip()
        result.lines.append(summary)
        if flag in " *=+":
            result.pushed = True
        elif flag == "!":
            if summary.startswith("[rejected]") or any(word in summary for word in RACES):
                result.moved = True
            else:
                said = remote_said(err)
                result.refused = summary + (f"; the remote said: {said}" if said else "")
    if not result.lines:
        raise GitError(f"git push {shown} failed: {detail(err) or f'git exited {status}'}")
    return result
