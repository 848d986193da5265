"""Publish rendered manifests into a deploy repository or an environment branch.

The rendered-manifests pattern: the config repository holds specs and their output, and a
second repository (or branch) holds only the output that Argo CD or Flux syncs, each commit
there pointing back at the source commit it came from. :func:`publish_files` is the whole
git side and what the rollout bot calls after its own commit; :func:`publish_repo` is the
``meshgen publish`` command: render, then publish.

Guarantees, the same as the rollout bot's (DESIGN §1, §6):

* idempotent -- when the target path already holds exactly these bytes, nothing is
  committed and the result says so;
* never loses a commit -- a push rejected because the branch moved is answered by fetching
  the new tip, re-applying the files on top of it and pushing again, at most ``attempts``
  times; nothing is ever force-pushed;
* outside failures (clone, fetch, push) raise :class:`generator.errors.GitError`, exit 3.

Layout: ``rendered/<env>/...`` of the config repository lands at ``<path>/<env>/...`` of the
target (``path`` defaults to ``rendered``, so Argo CD and Flux manifests that point at
``rendered/<env>`` work for both repositories). Publishing some environments replaces
exactly their directories; publishing all of them replaces the whole ``path``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Mapping

import git

from generator import errors
from generator.render import render

RENDERED = "rendered"
"""The config repository's default output directory (``paths.rendered``), whose layout is published."""

DEFAULT_ATTEMPTS = 5
"""Push attempts before giving up (each after fetching the moved branch)."""


@dataclass(frozen=True)
class Source:
    """The config repository commit that rendered files come from.

    Attributes:
        url: where the source repository lives (its ``origin`` URL, else its path).
        commit: the full commit SHA of ``HEAD``.
        dirty: whether specs or templates had uncommitted changes when rendering.
    """

    url: str
    commit: str
    dirty: bool = False

    @property
    def link(self) -> str:
        """A browsable link to the commit for common forges, else ``url@sha``."""
        web = web_url(self.url)
        return f"{web}/commit/{self.commit}" if web else f"{self.url}@{self.commit}"


@dataclass(frozen=True)
class Published:
    """The outcome of a publish.

    Attributes:
        commit: the new commit's SHA in the target, ``None`` when nothing changed.
        attempts: pushes tried (0 when nothing changed).
        files: files written under the target path.
    """

    commit: str | None
    attempts: int
    files: int


def web_url(url: str) -> str | None:
    """``https://host/owner/repo`` for an https or scp-like ssh git URL, else ``None``."""
    m = re.match(r"^(?:ssh://)?git@([^:/]+)[:/](.+?)(?:\.git)?/?$", url)
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    m = re.match(r"^https?://(?:[^@/]+@)?(.+?)(?:\.git)?/?$", url)
    return f"https://{m.group(1)}" if m else None


def select(files: Mapping[str, bytes], envs: list[str] | None, path: str | None = None,
           rendered_dir: str = RENDERED) -> tuple[dict[str, bytes], list[str]]:
    """Map rendered files into the target layout.

    Args:
        files: ``{"rendered/<env>/...": bytes}`` as ``Rendering.files`` holds them; paths
            outside ``rendered_dir`` are ignored.
        envs: environments to publish; ``None`` publishes everything under ``rendered_dir``
            (the Argo CD / Flux manifests of ``_gitops/`` included).
        path: target directory, POSIX, relative to the target repository root (``.`` for
            the root); default: ``rendered_dir``.
        rendered_dir: the config repository's rendered directory.

    Returns:
        ``({target path: bytes}, [target directories to replace])``.

    Raises:
        errors.UsageError: ``path`` escapes the repository, or an environment has no files.
    """
    path = rendered_dir if path is None else path
    base = PurePosixPath(path)
    if base.is_absolute() or ".." in base.parts:
        raise errors.UsageError(f"--path {path}: must be a relative path inside the target repository")
    out: dict[str, bytes] = {}
    source = PurePosixPath(rendered_dir)
    for name, data in files.items():
        rel = PurePosixPath(name)
        if not rel.is_relative_to(source) or len(rel.relative_to(source).parts) < 2:
            continue
        inside = rel.relative_to(source)
        if envs is not None and inside.parts[0] not in envs:
            continue
        out[(base / inside).as_posix()] = data
    if envs is None:
        return out, [base.as_posix()]
    for env in envs:
        if not any(PurePosixPath(p).is_relative_to(base / env) for p in out):
            raise errors.UsageError(f"--env {env}: nothing rendered for this environment")
    return out, [(base / env).as_posix() for env in envs]


def message(source: Source, replaced: list[str]) -> str:
    """The commit message: a subject naming what and where from, the link, and trailers."""
    where = ", ".join(replaced)
    name = PurePosixPath(source.url.rstrip("/")).name.removesuffix(".git") or source.url
    dirty = " (with uncommitted changes)" if source.dirty else ""
    return (f"Publish {where} from {name}@{source.commit[:7]}{dirty}\n\n"
            f"Rendered by meshgen from {source.link}\n\n"
            f"Source-Repository: {source.url}\n"
            f"Source-Commit: {source.commit}\n")


def publish_files(files: Mapping[str, bytes], replaced: list[str], *, to: str, branch: str,
                  message: str, attempts: int = DEFAULT_ATTEMPTS) -> Published:
    """Commit ``files`` into branch ``branch`` of repository ``to`` and push it.

    The target is cloned into a temporary directory (removed afterwards). Each attempt starts
    from the branch's current tip (or an empty orphan branch when it does not exist yet),
    removes the ``replaced`` directories, writes ``files``, and commits only if that changed
    anything. A rejected push is retried after a short randomised pause.

    Args:
        files: ``{path in the target: bytes}``.
        replaced: directories whose old content is removed first (``.`` for everything).
        to: git URL or path of the target repository.
        branch: target branch; created when missing.
        message: commit message (see :func:`message`).
        attempts: pushes tried before giving up.

    Returns:
        What was published.

    Raises:
        errors.GitError: the target could not be fetched, or the push failed or was
            rejected ``attempts`` times (exit 3).
    """
    with tempfile.TemporaryDirectory(prefix="meshgen-publish-") as tmp:
        repo = _init(Path(tmp) / "target", to)
        for attempt in range(1, attempts + 1):
            tip = _fetch(repo, branch)
            _checkout(repo, branch, tip)
            if not _apply(repo, files, replaced):
                return Published(None, attempt - 1, len(files))
            with repo.git.custom_environment(**_identity(repo)):
                repo.git.commit("--quiet", "--no-verify", "-m", message)
            if _push(repo, branch):
                return Published(repo.head.commit.hexsha, attempt, len(files))
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise errors.GitError(f"push to {to} branch {branch} was rejected {attempts} times: "
                          f"the branch keeps moving; try again")


def git_detail(e: git.GitCommandError) -> str:
    """The message git printed, from a GitPython error, on one line (GitPython wraps it in ``stderr: '...'``)."""
    detail = (e.stderr or "").strip()
    m = re.fullmatch(r"stderr: '(.*)'", detail, re.S)
    return " ".join((m.group(1) if m else detail).split()) or str(e)


BOT_NAME_ENV, BOT_EMAIL_ENV = "MESHGEN_BOT_NAME", "MESHGEN_BOT_EMAIL"
DEFAULT_IDENTITY = ("meshgen-bot", "meshgen-bot@meshgen.invalid")
"""The commit identity when neither the bot's variables nor git's configuration name one."""


def _identity(repo: git.Repo) -> dict[str, str]:
    """Environment for ``git commit``: the rollout bot's identity (``MESHGEN_BOT_NAME`` and
    ``MESHGEN_BOT_EMAIL``) if set, else git's own (config, ``GIT_AUTHOR_*``), else meshgen-bot."""
    name, email = os.environ.get(BOT_NAME_ENV), os.environ.get(BOT_EMAIL_ENV)
    if not (name or email):
        configured = repo.config_reader().get_value("user", "email", "")
        if configured or os.environ.get("GIT_AUTHOR_EMAIL") or os.environ.get("EMAIL"):
            return {}
    name, email = name or DEFAULT_IDENTITY[0], email or DEFAULT_IDENTITY[1]
    return {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email}


def _git_error(what: str, e: git.GitCommandError) -> errors.GitError:
    return errors.GitError(f"{what}: {git_detail(e)}")


def _init(where: Path, url: str) -> git.Repo:
    repo = git.Repo.init(where)
    repo.create_remote("origin", url)
    return repo


def _fetch(repo: git.Repo, branch: str) -> git.Commit | None:
    """The branch's current tip in the target, fetched; ``None`` when it does not exist."""
    try:
        heads = repo.git.ls_remote("--heads", "origin", f"refs/heads/{branch}")
    except git.GitCommandError as e:
        raise _git_error(f"cannot reach {repo.remotes.origin.url}", e) from e
    if not heads.strip():
        return None
    try:
        repo.git.fetch("--no-tags", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
    except git.GitCommandError as e:
        raise _git_error(f"cannot fetch {branch} from {repo.remotes.origin.url}", e) from e
    return repo.commit(f"refs/remotes/origin/{branch}")


def _checkout(repo: git.Repo, branch: str, tip: git.Commit | None) -> None:
    """Make the work tree and index exactly ``tip`` (or empty), on local branch ``branch``."""
    if tip is not None:
        repo.git.checkout("--force", "-B", branch, tip.hexsha)
    else:
        repo.git.checkout("--force", "--orphan", branch)
        repo.git.read_tree("--empty")
    repo.git.clean("-fdxq")


def _apply(repo: git.Repo, files: Mapping[str, bytes], replaced: list[str]) -> bool:
    """Replace the directories and write the files; whether the index changed."""
    root = Path(repo.working_tree_dir)
    for rel in replaced:
        target = (root / rel).resolve()
        if target == root.resolve():
            for child in root.iterdir():
                if child.name != ".git":
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for rel, data in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    repo.git.add("--all", ".")
    if repo.head.is_valid():
        return bool(repo.index.diff("HEAD"))
    return bool(files)


def _push(repo: git.Repo, branch: str) -> bool:
    """Push HEAD to the branch; ``False`` when rejected because the branch moved."""
    try:
        infos = repo.remotes.origin.push(f"HEAD:refs/heads/{branch}")
    except git.GitCommandError as e:
        raise _git_error(f"push to {repo.remotes.origin.url} failed", e) from e
    if not infos:
        raise errors.GitError(f"push to {repo.remotes.origin.url} failed: no answer from the remote")
    info = infos[0]
    if info.flags & (info.REJECTED | info.REMOTE_REJECTED):
        return False
    if info.flags & info.ERROR:
        raise errors.GitError(f"push to {repo.remotes.origin.url} failed: {info.summary.strip()}")
    return True


def source_of(root: Path) -> Source:
    """The source commit of a config repository: ``origin`` URL (else its path), ``HEAD``.

    ``dirty`` is true when files that rendering reads (``meshgen.yaml``, ``apps/``,
    ``environments/``, ``templates/``, ``status/``) differ from ``HEAD``.

    Raises:
        errors.UsageError: ``root`` is not a git repository with a commit.
    """
    try:
        repo = git.Repo(root, search_parent_directories=True)
        commit = repo.head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError) as e:
        raise errors.UsageError(f"{root}: publish needs a git repository with a commit to link to") from e
    url = repo.remotes.origin.url if "origin" in [r.name for r in repo.remotes] else str(Path(root).resolve())
    inputs = ["meshgen.yaml", "apps", "environments", "templates", "status"]
    dirty = bool(repo.git.status("--porcelain", "--", *inputs).strip())
    return Source(url, commit, dirty)


def publish_repo(root: Path, *, to: str, branch: str, path: str | None = None,
                 envs: list[str] | None = None, attempts: int = DEFAULT_ATTEMPTS) -> Published:
    """Render the config repository at ``root`` and publish the result (``meshgen publish``).

    A rollout tick's script can call it after pushing a step (the bot itself publishes nothing).
    ``path`` defaults to the repository's rendered directory (``rendered``).

    Raises:
        errors.SpecErrors: the repository does not render.
        errors.UsageError: bad ``path`` or ``envs``, or ``root`` is no git repository.
        errors.GitError: the target could not be reached or kept rejecting the push.
    """
    source = source_of(root)
    rendering = render.render_repo(root, envs)
    files, replaced = select(rendering.files, envs, path, rendering.rendered_dir)
    return publish_files(files, replaced, to=to, branch=branch, message=message(source, replaced),
                         attempts=attempts)
