"""Reading the rollout history out of git: each revision of each status file, for
:func:`generator.rollout.history.timelines`.

A long-lived config repository holds tens of thousands of bot commits, so this reads git in
two streams, never one process per commit: one ``git log --raw`` over ``status/`` lists every
commit with the blob of each status file it changed, and GitPython's object database (one
long-running ``git cat-file --batch``) reads each distinct blob once. Each blob is parsed with
PyYAML's C loader; identical contents are parsed once.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import git
import yaml

from generator.errors import GitError, UsageError
from generator.rollout import history
from generator.rollout.history import Revision, Timeline
from generator.spec.config import load_repo

_NULL = "0" * 40
_RECORD, _FIELD = "\x1e", "\x1f"


def _open(root: Path) -> git.Repo:
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
        raise UsageError(f"{root} is not in a git repository; the rollout history is read from git") from e


def revisions(root: Path, status_dir: str = "status") -> Iterator[Revision]:
    """Every revision of every ``<status_dir>/<env>/<app>.yaml``, oldest first.

    Args:
        root: the config repository (a git working tree or a folder inside one).
        status_dir: the status folder, relative to ``root``.

    Raises:
        UsageError: ``root`` is not in a git repository.
        GitError: git failed.
    """
    repo = _open(Path(root))
    top = Path(repo.working_tree_dir or root).resolve()
    prefix = (Path(root).resolve() / status_dir).relative_to(top).as_posix().rstrip("/") + "/"
    try:
        repo.head.commit
    except ValueError:
        return  # no commit yet: no history
    args = ["--reverse", "--topo-order", "--no-renames", "--raw", "--no-abbrev",
            f"--format={_RECORD}%H{_FIELD}%an{_FIELD}%ae{_FIELD}%at{_FIELD}%s"]
    try:
        out = repo.git.log(*args, "HEAD", "--", prefix)
    except git.GitCommandError as e:
        raise GitError(f"git log failed in {top}: {e.stderr.strip()}") from e
    parsed: dict[str, Any] = {}
    for record in out.split(_RECORD):
        if not record:
            continue
        header, _, raw = record.partition("\n")
        sha, author, email, stamp, subject = header.split(_FIELD, 4)
        moment = datetime.fromtimestamp(int(stamp), timezone.utc)
        for line in raw.splitlines():
            if not line.startswith(":"):
                continue
            meta, _, path = line.partition("\t")
            if not path.startswith(prefix) or not path.endswith(".yaml"):
                continue
            parts = path[len(prefix):-len(".yaml")].split("/")
            if len(parts) != 2:
                continue
            blob = meta.split()[3]
            yield Revision(sha, author, email, moment, subject, parts[0], parts[1], _status(repo, blob, parsed))


def _status(repo: git.Repo, blob: str, parsed: dict[str, Any]) -> Any:
    if blob == _NULL:
        return None
    if blob not in parsed:
        try:
            data = repo.odb.stream(bytes.fromhex(blob)).read()
        except Exception as e:  # GitPython raises several types for a missing object
            raise GitError(f"cannot read blob {blob[:8]}: {e}") from e
        try:
            doc = yaml.load(data, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            doc = None
        ok = isinstance(doc, dict) and doc.get("kind") == "RolloutStatus" and isinstance(doc.get("status"), dict)
        parsed[blob] = doc["status"] if ok else None
    return parsed[blob]


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
