"""Reading the rollout history out of git: each revision of each status file, for
:func:`generator.rollout.history.timelines`.

A long-lived config repository holds tens of thousands of bot commits, so this reads git in
at most three processes, never one per commit: ``git rev-parse`` finds the repository, one
``git log --raw`` over ``status/`` lists every commit with the blob of each status file it
changed, and one ``git cat-file --batch`` reads the blobs no earlier run has parsed. Each blob
is parsed once, with PyYAML's C loader, and kept by blob id. git runs as a plain subprocess
(GitPython's import alone costs a third of what git takes to print the log).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml

from generator.errors import DiskFull, GitError, UsageError
from generator.render import output
from generator.rollout import history
from generator.rollout.history import Revision, Timeline
from generator.spec.config import load_repo

_NULL = "0" * 40
_RECORD, _FIELD = "\x1e", "\x1f"


def _git(cwd: Path, *args: str, stdin: Any = None) -> subprocess.CompletedProcess[bytes]:
    """``git ARGS`` in ``cwd``, output as bytes; colours and pagers off whatever the config says.

    Raises:
        GitError: git is not installed.
    """
    try:
        return subprocess.run(["git", "-c", "color.ui=never", "--no-pager", *args], cwd=cwd, stdin=stdin,
                              capture_output=True)
    except OSError as e:
        raise GitError(f"cannot run git: {e.strerror or e}; install git") from e


def _locate(root: Path) -> tuple[Path, Path, bool]:
    """``(top, git_dir, has_commits)`` of the repository holding ``root`` (one ``git rev-parse``).

    Raises:
        UsageError: ``root`` is not in a git repository.
    """
    if not root.is_dir():
        raise UsageError(f"{root} is not in a git repository; the rollout history is read from git")
    proc = _git(root, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--verify", "-q", "HEAD")
    lines = proc.stdout.decode(errors="surrogateescape").splitlines()
    if len(lines) < 2:
        raise UsageError(f"{root} is not in a git repository; the rollout history is read from git")
    return Path(lines[0]), Path(lines[1]), proc.returncode == 0 and len(lines) == 3


def revisions(root: Path, status_dir: str = "status") -> Iterator[Revision]:
    """Every revision of every ``<status_dir>/<env>/<app>.yaml``, oldest first.

    Args:
        root: the config repository (a git working tree or a folder inside one).
        status_dir: the status folder, relative to ``root``.

    Raises:
        UsageError: ``root`` is not in a git repository.
        GitError: git failed.
    """
    root = Path(root)
    top, git_dir, has_commits = _locate(root)
    if not has_commits:
        return  # no commit yet: no history
    prefix = (root.resolve() / status_dir).relative_to(top.resolve()).as_posix().rstrip("/") + "/"
    proc = _git(top, "log", "--reverse", "--topo-order", "--no-renames", "--raw", "--no-abbrev",
                "--encoding=UTF-8", f"--format={_RECORD}%H{_FIELD}%an{_FIELD}%ae{_FIELD}%at{_FIELD}%s",
                "HEAD", "--", prefix)
    if proc.returncode:
        raise GitError(f"git log failed in {top}: {proc.stderr.decode(errors='replace').strip()}")
    found: list[tuple[str, str, str, datetime, str, str, str, str]] = []
    cut = len(prefix)
    for record in proc.stdout.decode(errors="replace").split(_RECORD):
        if not record:
            continue
        header, _, raw = record.partition("\n")
        sha, author, email, stamp, subject = header.split(_FIELD, 4)
        moment = datetime.fromtimestamp(int(stamp), timezone.utc)
        for line in raw.split("\n"):
            # :<old mode> <new mode> <old blob> <new blob> <status>\t<path>
            if not line.startswith(":"):
                continue
            meta, _, path = line.partition("\t")
            if not path.startswith(prefix) or not path.endswith(".yaml"):
                continue
            parts = path[cut:-5].split("/")
            if len(parts) != 2:
                continue
            found.append((sha, author, email, moment, subject, parts[0], parts[1], meta.split()[3]))
    store = _ParsedBlobs(git_dir)
    parsed = store.load()
    contents = _read_blobs(top, {blob for *_, blob in found if blob != _NULL and blob not in parsed})
    for blob, data in contents.items():
        parsed[blob] = _status(data)
    if contents:
        store.save(parsed)
    for sha, author, email, moment, subject, env, app, blob in found:
        yield Revision(sha, author, email, moment, subject, env, app, parsed[blob] if blob != _NULL else None)


class _ParsedBlobs:
    """Status blobs parsed by an earlier run, by blob id (``.git/meshgen/status-blobs.pickle``).

    A blob id names its bytes, so an entry is never stale: a later run reads and parses only
    the blobs new since (``MESHGEN_NO_CACHE=1``: none kept)."""

    def __init__(self, git_dir: Path) -> None:
        self.path = git_dir / "meshgen" / "status-blobs.pickle"
        self.off = bool(os.environ.get("MESHGEN_NO_CACHE"))

    def load(self) -> dict[str, Any]:
        if self.off:
            return {}
        try:
            with self.path.open("rb") as f:
                found = pickle.load(f)
            return found if isinstance(found, dict) else {}
        except Exception:  # missing, damaged or from another version: parse afresh
            return {}

    def save(self, parsed: dict[str, Any]) -> None:
        if self.off:
            return
        try:
            output.atomic_write(self.path, pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, DiskFull):  # a cache that cannot be written is only a later miss
            pass


def _read_blobs(top: Path, blobs: set[str]) -> dict[str, bytes]:
    """The contents of ``blobs`` through one ``git cat-file --batch`` (fed from a file, so
    neither pipe can fill while the other waits)."""
    if not blobs:
        return {}
    with tempfile.TemporaryFile() as names:
        names.write("".join(f"{blob}\n" for blob in blobs).encode())
        names.seek(0)
        proc = _git(top, "cat-file", "--batch", stdin=names)
    if proc.returncode:
        raise GitError(f"git cat-file failed: {proc.stderr.decode(errors='replace').strip()}")
    out = proc.stdout
    contents: dict[str, bytes] = {}
    pos = 0
    while pos < len(out):
        eol = out.index(b"\n", pos)
        name, kind, *size = out[pos:eol].split()
        if kind != b"blob":
            raise GitError(f"cannot read blob {name.decode()[:8]}: {kind.decode()}")
        length = int(size[0])
        contents[name.decode()] = out[eol + 1:eol + 1 + length]
        pos = eol + 1 + length + 1
    return contents


def _status(data: bytes) -> Any:
    """The ``status`` mapping of a status file's bytes, ``None`` if it is not a RolloutStatus."""
    try:
        doc = yaml.load(data, Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return None
    ok = isinstance(doc, dict) and doc.get("kind") == "RolloutStatus" and isinstance(doc.get("status"), dict)
    return doc["status"] if ok else None


def read_history(root: Path, *, app: str | None = None, envs: Sequence[str] = (),
                 since: datetime | None = None) -> list[Timeline]:
    """The timelines of every rollout (of ``app``, in ``envs``) with an event since ``since``.

    Raises:
        UsageError: not a git repository; ``app`` or an environment unknown both to the
            config repository and to the history.
        SpecErrors: ``meshgen.yaml`` is invalid.
        GitError: git failed.
    """
    root = Path(root)
    repo = load_repo(root)
    # The whole log is read even with ``since``: the revision before ``since`` tells what the
    # first one after it did.
    found = history.timelines(revisions(root, repo.rel("status")))
    seen_apps = {t.app for t in found}
    seen_envs = {t.env for t in found}
    unknown = [f"app {app!r}"] if app and app not in repo.apps and app not in seen_apps else []
    unknown += [f"environment {e!r}" for e in envs if e not in repo.environments and e not in seen_envs]
    if unknown:
        raise UsageError(f"unknown {', '.join(unknown)}")
    return history.select(found, app=app, envs=envs, since=since)
