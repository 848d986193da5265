"""Git for the rollout bot, through GitPython: commit, sync with the tracked branch, push.

The bot's rules of conduct (DESIGN §1, §6), and how this module keeps them:

- *Never force-push*: :meth:`Workspace.push` pushes ``HEAD`` to the tracked branch with a
  plain refspec; a rejection is reported, never overridden.
- *Never lose a human commit*: :meth:`Workspace.sync` moves the local branch only forward
  to the remote's head, or drops local commits that are the bot's own (made with the bot's
  identity and touching only bot-owned paths) and not yet pushed. Any other local commit
  that the remote lacks stops the tick with a :class:`~generator.errors.GitError`.
- *Never duplicate a step*: the bot's unpushed work is not rebased onto a moved remote;
  it is dropped by :meth:`Workspace.sync` and decided again from the new head (the caller
  loops), so the second of two bots sees the first one's step and does nothing.
- *Finish an interrupted tick*: uncommitted changes under bot-owned paths are a tick that
  died between writing and committing; :meth:`Workspace.restore` puts them back to
  ``HEAD`` so the next tick decides again from what git holds.

Every GitPython error is wrapped in :class:`~generator.errors.GitError` (exit 3).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple, Sequence

import git

from generator.bot import pack
from generator.errors import GitError, UsageError
from generator.gitops import remote

NAME_ENV = "MESHGEN_BOT_NAME"
EMAIL_ENV = "MESHGEN_BOT_EMAIL"
DEFAULT_NAME = "meshgen-bot"
DEFAULT_EMAIL = "meshgen-bot@meshgen.invalid"
#: The folder of one commit's fast-import stream and marks, in the git directory.
COMMIT_TEMP_PREFIX = "meshgen-commit-"


class Identity(NamedTuple):
    """A git author and committer."""

    name: str
    email: str

    def actor(self) -> git.Actor:
        return git.Actor(self.name, self.email)


def bot_identity(settings: Mapping | None = None, environ: Mapping[str, str] | None = None) -> Identity:
    """The bot's commit identity: ``MESHGEN_BOT_NAME``/``MESHGEN_BOT_EMAIL`` over
    ``meshgen.yaml``'s ``bot: {name, email}`` over ``meshgen-bot``."""
    env = os.environ if environ is None else environ
    configured = (settings or {}).get("bot") or {}
    return Identity(env.get(NAME_ENV) or configured.get("name") or DEFAULT_NAME,
                    env.get(EMAIL_ENV) or configured.get("email") or DEFAULT_EMAIL)


def git_dir(root: Path) -> Path:
    """The git directory (``.git``) of the working tree whose top is ``root``.

    Raises:
        UsageError: ``root`` is not the top of a git working tree (exit 2).
    """
    try:
        return Path(git.Repo(Path(root)).git_dir)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
        raise UsageError(f"{root} is not a git working tree; the bot works in a clone of the config repo") from e


#: What git leaves in its git directory while an operation waits for a person, and how to end
#: it (git-status(1) reads the same files to say "You are in the middle of ..."). First match wins:
#: ``rebase-apply/applying`` is ``git am``; ``REBASE_HEAD`` is left by a stopped rebase.
IN_PROGRESS = (
    ("rebase-apply/applying", "a git am", "git am --continue after resolving, or git am --abort"),
    ("rebase-merge", "a rebase", "git rebase --continue after resolving, or git rebase --abort"),
    ("rebase-apply", "a rebase", "git rebase --continue after resolving, or git rebase --abort"),
    ("REBASE_HEAD", "a rebase", "git rebase --continue after resolving, or git rebase --abort"),
    ("MERGE_HEAD", "a merge", "resolve the conflicts and git commit, or git merge --abort"),
    ("CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --continue after resolving, or git cherry-pick --abort"),
    ("REVERT_HEAD", "a revert", "git revert --continue after resolving, or git revert --abort"),
    ("BISECT_LOG", "a bisect", "git bisect reset"),
)


def in_progress(root: Path) -> tuple[str, str, str] | None:
    """The git operation left unfinished in the working tree at ``root``: ``(file in the git
    directory, what, how to end it)``, or ``None``.

    Raises:
        UsageError: ``root`` is not the top of a git working tree.
    """
    directory = git_dir(root)
    for name, what, how in IN_PROGRESS:
        if (directory / name).exists():
            return name, what, how
    return None


def refuse_in_progress(root: Path) -> None:
    """Refuse to work in a clone where a merge, rebase, cherry-pick, revert, bisect or
    ``git am`` waits for a person: its files may hold conflict markers and its ``HEAD`` is
    not the branch the bot pushes.

    Raises:
        UsageError: an operation is in progress (exit 2); the message says which and how to end it.
    """
    found = in_progress(root)
    if found:
        name, what, how = found
        shown = git_dir(root) / name
        raise UsageError(f"{what} is in progress in {root} ({shown} exists); the rollout bot works on committed "
                         f"specs only and leaves it alone: finish it or abort it first ({how})")


class Upstream(NamedTuple):
    """The remote branch the local branch tracks."""

    remote: str
    branch: str

    def __str__(self) -> str:
        return f"{self.remote}/{self.branch}"


class Workspace:
    """A git working tree in which the bot commits.

    Args:
        root: the top of the working tree.
        owned: path prefixes (``status/``, ``rendered/``) that only the bot writes.

    Raises:
        GitError: ``root`` is not the top of a git working tree.
    """

    def __init__(self, root: Path, owned: Sequence[str]) -> None:
        self.root = Path(root)
        self.owned = tuple(p.rstrip("/") + "/" for p in owned)
        try:
            self.repo = git.Repo(self.root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as e:
            raise UsageError(f"{self.root} is not a git working tree; the bot works in a clone of the config repo") from e

    def _owned(self, path: str) -> bool:
        return path.startswith(self.owned)

    def head(self) -> str:
        """The commit SHA of ``HEAD`` (empty for a repository without commits)."""
        try:
            return self.repo.head.commit.hexsha
        except ValueError:
            return ""

    def dirty(self) -> list[str]:
        """Repo-relative paths with uncommitted changes, untracked files included."""
        try:
            out = self.repo.git.status("--porcelain", "-z", "--untracked-files=all")
        except git.GitCommandError as e:
            raise GitError(f"git status failed in {self.root}: {e.stderr.strip()}") from e
        paths, fields, i = [], out.split("\0"), 0
        while i < len(fields):
            entry = fields[i]
            i += 1
            if not entry:
                continue
            paths.append(entry[3:])
            if entry[0] in "RC":
                i += 1  # the rename's source path follows
        return paths

    def restore(self, interrupted: bool = False) -> list[str]:
        """Put bot-owned paths back to ``HEAD`` (an interrupted tick's leftovers).

        Args:
            interrupted: the previous tick was killed (see :class:`generator.bot.lock.TickLock`).
                Then a human-owned file that differs from ``HEAD`` is put back too when its
                content is that of a commit the killed tick was moving between (``HEAD@{1}``,
                ``ORIG_HEAD``, the tracked remote branch): a ``git reset`` cut short in the
                middle, not a person's edit.

        Returns:
            The paths restored or removed.

        Raises:
            UsageError: human-owned files have uncommitted changes: the bot decides on
                committed specs only.
            GitError: git failed.
        """
        dirty = self.dirty()
        foreign = [p for p in dirty if not self._owned(p)]
        if foreign and interrupted:
            foreign = [p for p in foreign if not self._left_by_git(p)]
        if foreign:
            raise UsageError(f"uncommitted changes outside {', '.join(self.owned)} in {self.root}: "
                           f"{', '.join(sorted(foreign)[:5])}{' ...' if len(foreign) > 5 else ''}; "
                           "the rollout bot works on committed specs only: commit or stash them")
        if not dirty:
            return []
        tracked = set()
        if self.head():
            tracked = {p for p in dirty if self._in_head(p)}
        try:
            if tracked:
                self.repo.git.checkout("HEAD", "--", *sorted(tracked))
            for path in set(dirty) - tracked:
                (self.root / path).unlink(missing_ok=True)
        except (git.GitCommandError, OSError) as e:
            raise GitError(f"could not restore {', '.join(dirty)} in {self.root}: {e}") from e
        return sorted(dirty)

    def _left_by_git(self, path: str) -> bool:
        """Whether ``path``'s working-tree content is its content in one of the commits an
        interrupted ``git reset`` moves between (absent counts as content)."""
        file = self.root / path
        try:
            content = file.read_bytes() if file.is_file() else None
        except OSError:
            return False
        revisions = ["HEAD", "HEAD@{1}", "ORIG_HEAD"]
        try:
            tracking = self.repo.active_branch.tracking_branch()
            if tracking is not None:
                revisions.append(tracking.path)
        except (TypeError, ValueError, git.GitError):
            pass
        for revision in revisions:
            try:
                tree = self.repo.commit(revision).tree
            except (git.BadName, ValueError, IndexError, git.GitError):
                continue
            try:
                blob = (tree / path).data_stream.read()
            except KeyError:
                blob = None
            if blob == content:
                return True
        return False

    def _in_head(self, path: str) -> bool:
        try:
            self.repo.head.commit.tree / path
        except KeyError:
            return False
        return True

    def commit(self, paths: Iterable[str], message: str, identity: Identity | None = None) -> str:
        """Commit ``paths`` (repo-relative; missing files are removed) with ``message``.

        Returns:
            The new commit's SHA.

        Raises:
            GitError: as :meth:`commit_all`.
        """
        return self.commit_all([(message, list(paths))], identity)[0]

    def commit_all(self, commits: Sequence[tuple[str, Iterable[str]]], identity: Identity | None = None,
                   contents: Mapping[str, bytes] | None = None,
                   before_update: Callable[[], None] | None = None) -> list[str]:
        """Make one commit per ``(message, paths)``, in order, on top of the checked-out branch.

        The files' bytes are taken from the working tree (a path that no longer exists is
        removed). All commits are written as one pack (:mod:`generator.bot.pack`: each
        commit costs what it changes, however many apps a directory holds), and the branch
        moves from the old ``HEAD`` to the last one only if it has not moved meanwhile; a
        first commit, or a repository not named by SHA-1, goes through ``git fast-import``.
        The index is then reset to the new ``HEAD``, which the working tree already matches.

        Args:
            commits: ``(message, repo-relative paths)`` per commit.
            identity: author and committer; ``None`` for git's configured user.
            contents: ``{path: bytes}`` to commit for these paths instead of the working
                tree's bytes (the caller's exact, checked content: another process writing
                the working tree meanwhile cannot change what is committed).
            before_update: called when the commits are written, before the branch moves to
                them; what it raises is raised and nothing is committed.

        Returns:
            The new commits' SHAs, in order.

        Raises:
            GitError: a detached HEAD, or git failed.
        """
        if not commits:
            return []
        try:
            branch = self.repo.active_branch.name
        except TypeError as e:
            raise GitError(f"{self.root} has a detached HEAD; check out a branch to commit on") from e
        if identity:
            author = committer = identity.actor()
        else:
            reader = self.repo.config_reader()
            author, committer = git.Actor.author(reader), git.Actor.committer(reader)
        when = f"{int(time.time())} +0000"
        head = self.head()
        changes: list[tuple[bytes, dict[str, bytes | None]]] = []
        for message, paths in commits:
            files: dict[str, bytes | None] = {}
            for path in sorted(set(paths)):
                file = self.root / path
                if contents is not None and path in contents:
                    files[path] = contents[path]
                elif file.is_file() and not file.is_symlink():
                    files[path] = file.read_bytes()
                else:
                    files[path] = None
            changes.append((message.encode(), files))
        raised: list[BaseException] = []  # what before_update raised goes up as it is

        def hook() -> None:
            if before_update is not None:
                try:
                    before_update()
                except BaseException as e:
                    raised.append(e)
                    raise
        try:
            if head and pack.sha1_repository(self.root):
                made = pack.write_commits(self.root, branch, head, changes,
                                          f"{author.name} <{author.email}> {when}".encode(),
                                          f"{committer.name} <{committer.email}> {when}".encode(), hook)
            else:
                hook()
                made = self._fast_import(branch, head, changes, author, committer, when)
            self.repo.git.reset("-q")
        except (git.GitError, OSError, pack.PackError) as e:
            if raised and e is raised[0]:
                raise
            raise GitError(f"git commit failed in {self.root}: {_stderr(e)}") from e
        return made

    def _fast_import(self, branch: str, head: str, changes: Sequence[tuple[bytes, Mapping[str, bytes | None]]],
                     author: git.Actor, committer: git.Actor, when: str) -> list[str]:
        """The commits through one ``git fast-import`` run (a first commit, or a repository
        whose objects are not named by SHA-1)."""
        chunks: list[bytes] = []
        for number, (text, files) in enumerate(changes, 1):
            chunks.append(f"commit refs/heads/{branch}\nmark :{number}\n"
                          f"author {author.name} <{author.email}> {when}\n"
                          f"committer {committer.name} <{committer.email}> {when}\n"
                          f"data {len(text)}\n".encode() + text + b"\n")
            if number == 1 and head:
                chunks.append(f"from {head}\n".encode())
            for path, data in files.items():
                if data is None:
                    chunks.append(f"D {_quote(path)}\n".encode())
                else:
                    chunks.append(f"M 100644 inline {_quote(path)}\ndata {len(data)}\n".encode() + data + b"\n")
            chunks.append(b"\n")
        chunks.append(b"done\n")
        git_dir = Path(self.repo.git_dir)
        for stale in git_dir.glob(f"{COMMIT_TEMP_PREFIX}*"):  # left by a process killed mid-commit
            shutil.rmtree(stale, ignore_errors=True)
        # under the git directory, not the system's temporary one: a process killed while
        # fast-import runs leaves its stream here, where the next commit removes it
        with tempfile.TemporaryDirectory(prefix=COMMIT_TEMP_PREFIX, dir=git_dir) as tmp:
            stream, marks = Path(tmp) / "stream", Path(tmp) / "marks"
            stream.write_bytes(b"".join(chunks))
            with stream.open("rb") as istream:
                self.repo.git.fast_import("--quiet", "--done", f"--export-marks={marks}", istream=istream)
            by_mark = dict(line.split() for line in marks.read_text().splitlines() if line)
        return [by_mark[f":{number}"] for number in range(1, len(changes) + 1)]

    def author(self) -> Identity:
        """The author of commits made without an identity: git's configured user
        (``GIT_AUTHOR_NAME``/``GIT_AUTHOR_EMAIL`` over ``user.name``/``user.email``)."""
        actor = git.Actor.author(self.repo.config_reader())
        return Identity(actor.name or "", actor.email or "")

    def upstream(self) -> Upstream:
        """The remote branch that the checked-out branch tracks.

        Raises:
            UsageError: a detached HEAD or a branch that tracks nothing (exit 2: a setup problem).
        """
        try:
            branch = self.repo.active_branch
        except TypeError as e:
            raise UsageError(f"{self.root} has a detached HEAD; check out a branch that tracks the remote") from e
        tracking = branch.tracking_branch()
        if tracking is None:
            raise UsageError(f"branch {branch.name} in {self.root} tracks no remote branch; "
                           f"set one with git branch --set-upstream-to")
        return Upstream(tracking.remote_name, tracking.remote_head)

    def fetch(self, upstream: Upstream, timeout: float = remote.DEFAULT_TIMEOUT) -> str:
        """Fetch the tracked branch; return the remote head's SHA.

        Raises:
            GitError: the remote is unreachable or lacks the branch.
            GitTimeout: the fetch took longer than ``timeout`` seconds.
        """
        ref = f"refs/remotes/{upstream.remote}/{upstream.branch}"
        status, _, err = remote.run(self.repo, ["fetch", upstream.remote, f"+refs/heads/{upstream.branch}:{ref}"],
                                    timeout, f"git fetch {upstream}")
        if status:
            raise GitError(f"git fetch {upstream} failed: {remote.detail(err) or f'git exited {status}'}")
        try:
            return self.repo.commit(ref).hexsha
        except (git.GitError, ValueError, git.BadName) as e:
            raise GitError(f"git fetch {upstream} failed: {_stderr(e)}") from e

    def own_commit(self, sha: str, identity: Identity) -> bool:
        """Whether ``sha`` is the bot's: its author is ``identity`` and it touches only
        bot-owned paths."""
        commit = self.repo.commit(sha)
        if commit.author.email != identity.email:
            return False
        return all(self._owned(str(path)) for path in commit.stats.files)

    def sync(self, upstream: Upstream, identity: Identity, timeout: float = remote.DEFAULT_TIMEOUT) -> str:
        """Fetch and move the local branch onto the remote's head.

        The branch moves forward when it is behind; its own unpushed commits (see
        :meth:`own_commit`) are dropped, to be decided again. Run :meth:`restore` first:
        the working tree must be clean.

        Returns:
            The remote head's SHA, now also ``HEAD``.

        Raises:
            GitError: fetch failed, or the local branch has commits the remote lacks that
                are not the bot's own.
        """
        remote_head = self.fetch(upstream, timeout)
        local = self.head()
        if local == remote_head:
            return remote_head
        try:
            ahead = [c.hexsha for c in self.repo.iter_commits(f"{remote_head}..{local}")] if local else []
        except git.GitError as e:
            raise GitError(f"git rev-list failed in {self.root}: {_stderr(e)}") from e
        foreign = [sha for sha in ahead if not self.own_commit(sha, identity)]
        if foreign:
            raise GitError(f"the local branch has {len(foreign)} commit(s) that {upstream} lacks and the bot did "
                           f"not make ({', '.join(s[:8] for s in foreign[:3])}); push or drop them first")
        try:
            self.repo.head.reset(remote_head, index=True, working_tree=True)
        except git.GitError as e:
            raise GitError(f"could not move {self.root} to {upstream}: {_stderr(e)}") from e
        return remote_head

    def push(self, upstream: Upstream, timeout: float = remote.DEFAULT_TIMEOUT) -> bool:
        """Push ``HEAD`` to the tracked branch, never forcing.

        Returns:
            True when pushed (or already there); False when rejected because the remote
            branch moved (fetch, decide again and retry).

        Raises:
            GitError: the remote is unreachable or refused for another reason (a hook,
                permissions); the message quotes what the remote said.
            GitTimeout: the push (a slow hook, say) took longer than ``timeout`` seconds.
        """
        result = remote.push(self.repo, upstream.remote, f"HEAD:refs/heads/{upstream.branch}", timeout,
                             shown=str(upstream))
        if result.pushed:
            return True
        if result.moved:
            return False
        # The remote also refuses when another push holds or moves the branch during ours: a
        # race, not a refusal, if the branch now holds commits this one lacks.
        if not self._contains(self.fetch(upstream, timeout)):
            return False
        raise GitError(f"git push {upstream} was refused: {result.refused}")

    def _contains(self, sha: str) -> bool:
        """Whether ``sha`` is ``HEAD`` or one of its ancestors."""
        try:
            return self.repo.is_ancestor(sha, "HEAD")
        except git.GitError as e:
            raise GitError(f"git merge-base failed in {self.root}: {_stderr(e)}") from e


def _quote(path: str) -> str:
    """A path as git fast-import reads it: C-style quoted when it holds special characters."""
    if not any(c in path for c in ' "\\\n') and not path.startswith('"'):
        return path
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _stderr(error: Exception) -> str:
    text = getattr(error, "stderr", "") or str(error)
    return " ".join(str(text).split())
