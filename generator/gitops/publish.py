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
from generator.gitops import remote
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
        path: target directory, POSIX, relative to the target repository root; default:
            ``rendered_dir``. The root (``.``) only with ``envs``: it then replaces ``<env>/``
            alone, never the whole branch.
        rendered_dir: the config repository's rendered directory.

    Returns:
        ``({target path: bytes}, [target directories to replace])``.

    Raises:
        errors.UsageError: ``path`` is empty, escapes the repository, is the root without
            ``envs`` (that would replace the whole branch), or an environment has no files.
    """
    path = rendered_dir if path is None else path
    if not path.strip():
        raise errors.UsageError(f"--path {path!r}: is empty; name a directory of the target repository "
                                f"(default: {rendered_dir}), or leave --path out")
    base = PurePosixPath(path)
    if base.is_absolute() or ".." in base.parts:
        raise errors.UsageError(f"--path {path}: must be a relative path inside the target repository")
    if envs is None and base.parts in ((), (".",)):
        raise errors.UsageError(f"--path {path}: is the target's root; publishing every environment there "
                                f"would replace the whole branch (hint: name a directory, e.g. --path "
                                f"{rendered_dir}, or publish each environment with --env E --path .)")
    if ".git" in base.parts:
        raise errors.UsageError(f"--path {path}: is inside the target's .git directory; choose a directory of "
                                f"its work tree (default: rendered)")
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
    source = Source(errors.redact(source.url), source.commit, source.dirty)  # no credential goes into history
    name = PurePosixPath(source.url.rstrip("/")).name.removesuffix(".git") or source.url
    dirty = " (with uncommitted changes)" if source.dirty else ""
    return (f"Publish {where} from {name}@{source.commit[:7]}{dirty}\n\n"
            f"Rendered by meshgen from {source.link}\n\n"
            f"Source-Repository: {source.url}\n"
            f"Source-Commit: {source.commit}\n")


def publish_files(files: Mapping[str, bytes], replaced: list[str], *, to: str, branch: str,
                  message: str, attempts: int = DEFAULT_ATTEMPTS, timeout: float = remote.DEFAULT_TIMEOUT) -> Published:
    """Commit ``files`` into branch ``branch`` of repository ``to`` and push it.

    The target is cloned into a temporary directory (removed afterwards). Each attempt starts
    from the branch's current tip (or an empty orphan branch when it does not exist yet),
    removes the ``replaced`` directories, writes ``files``, and commits only if that changed
    anything. A rejected push is retried after a short randomised pause.

    Args:
        files: ``{path in the target: bytes}``.
        replaced: directories whose old content is removed first (``.`` for everything).
        to: git URL or path of the target repository (a relative path is relative to the
            current directory).
        branch: target branch; created when missing.
        message: commit message (see :func:`message`).
        attempts: pushes tried before giving up.
        timeout: seconds each fetch or push may take before it is stopped.

    Returns:
        What was published.

    Raises:
        errors.GitError: the target could not be fetched, the remote refused the push (the
            message quotes what it said: a hook's output, a protected branch), or the push was
            rejected ``attempts`` times because the branch kept moving (exit 3).
        errors.GitTimeout: a fetch or push took longer than ``timeout`` (exit 3).
        errors.CheckFailed: the target's path to replace is a symbolic link, or runs through
            one: publish never writes or deletes through a link (exit 1).
        errors.DiskFullOutside: no space left for the temporary clone (exit 3); nothing was
            pushed.
    """
    to = target_url(to)
    shown = errors.redact(to)
    with tempfile.TemporaryDirectory(prefix="meshgen-publish-") as tmp:
        repo = _init(Path(tmp) / "target", to)
        for attempt in range(1, attempts + 1):
            tip = _fetch(repo, branch, timeout)
            try:
                _checkout(repo, branch, tip)
                if not _apply(repo, files, replaced):
                    return Published(None, attempt - 1, len(files))
                with repo.git.custom_environment(**_identity(repo)):
                    repo.git.commit("--quiet", "--no-verify", "-m", message)
            except git.GitCommandError as e:
                raise _git_error(f"cannot prepare the commit for {shown} branch {branch}", e) from e
            if _push(repo, branch, timeout):
                return Published(repo.head.commit.hexsha, attempt, len(files))
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise errors.GitError(f"push to {shown} branch {branch} was rejected {attempts} times because the branch "
                          f"moved each time (other pushes are landing); try again")


def target_url(to: str) -> str:
    """``to`` as git should see it from anywhere: a local path made absolute (it is resolved
    against the current directory, as ``git clone`` would), a URL unchanged.

    git reads ``scheme://...`` and scp-like ``[user@]host:path`` (no ``/`` before the first
    ``:``) as remote; anything else is a path.
    """
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", to):
        return to
    head = to.split("/", 1)[0]
    if ":" in head and not Path(to).exists():
        return to
    return os.path.abspath(to)


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
    return errors.GitError(errors.redact(f"{what}: {git_detail(e)}"))


def _init(where: Path, url: str) -> git.Repo:
    repo = git.Repo.init(where)
    repo.create_remote("origin", url)
    return repo


def _fetch(repo: git.Repo, branch: str, timeout: float) -> git.Commit | None:
    """The branch's current tip in the target, fetched; ``None`` when it does not exist."""
    shown = errors.redact(repo.remotes.origin.url)
    status, heads, err = remote.run(repo, ["ls-remote", "--heads", "origin", f"refs/heads/{branch}"], timeout,
                                    f"git ls-remote {shown}")
    if status:
        raise errors.GitError(f"cannot reach {shown}: {remote.detail(err) or f'git exited {status}'}")
    if not heads.strip():
        return None
    status, _, err = remote.run(repo, ["fetch", "--no-tags", "origin",
                                       f"+refs/heads/{branch}:refs/remotes/origin/{branch}"],
                                timeout, f"git fetch {branch} from {shown}")
    if status:
        raise errors.GitError(f"cannot fetch {branch} from {shown}: {remote.detail(err) or f'git exited {status}'}")
    return repo.commit(f"refs/remotes/origin/{branch}")


def _checkout(repo: git.Repo, branch: str, tip: git.Commit | None) -> None:
    """Make the work tree and index exactly ``tip`` (or empty), on local branch ``branch``."""
    if tip is not None:
        repo.git.checkout("--force", "-B", branch, tip.hexsha)
    else:  # a new branch: start it empty, whatever this clone's HEAD was (an unborn main, say)
        repo.git.symbolic_ref("HEAD", f"refs/heads/{branch}")
        if repo.git.for_each_ref(f"refs/heads/{branch}").strip():
            repo.git.update_ref("-d", f"refs/heads/{branch}")
        repo.git.read_tree("--empty")
    repo.git.clean("-fdxq")


def _through_link(root: Path, rel: str) -> str | None:
    """The first component of ``rel`` under ``root`` that is a symbolic link, else ``None``."""
    path = root
    for part in PurePosixPath(rel).parts:
        if part == ".":
            continue
        path = path / part
        if path.is_symlink():
            return path.relative_to(root).as_posix()
    return None


def _apply(repo: git.Repo, files: Mapping[str, bytes], replaced: list[str]) -> bool:
    """Replace the directories and write the files; whether the index changed.

    Nothing is followed out of the clone: a replaced directory that is, or lies under, a
    symbolic link is refused; links among the replaced entries are removed as links.
    """
    root = Path(repo.working_tree_dir)
    for rel in [*replaced, *files]:
        link = _through_link(root, rel)
        if link is not None:
            raise errors.CheckFailed(
                f"the target repository's {link} is a symbolic link (to {os.readlink(root / link)}); publish "
                f"never writes or deletes through a link (hint: commit a real directory there, or choose "
                f"another --path)")
    for rel in replaced:
        target = root / rel
        if PurePosixPath(rel).parts in ((), (".",)):
            for child in root.iterdir():
                if child.name != ".git":
                    _remove(child)
        elif target.exists() or target.is_symlink():
            _remove(target)
    for rel, data in sorted(files.items()):
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as e:
            if e.errno in errors.NO_SPACE:
                raise errors.DiskFullOutside(
                    f"{rel} in the temporary clone of the target ({root})",
                    f"free space in {tempfile.gettempdir()}, where publish clones the target, or set TMPDIR to "
                    f"a folder with room; the target was not changed") from e
            raise
    repo.git.add("--all", ".")
    if repo.head.is_valid():
        return bool(repo.index.diff("HEAD"))
    return bool(files)


def _remove(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a directory tree."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path)


def _push(repo: git.Repo, branch: str, timeout: float) -> bool:
    """Push HEAD to the branch; ``False`` when rejected because the branch moved.

    Raises:
        errors.GitError: the remote refused for another reason, in its own words.
    """
    shown = errors.redact(repo.remotes.origin.url)
    result = remote.push(repo, "origin", f"HEAD:refs/heads/{branch}", timeout, shown=f"to {shown}")
    if result.pushed:
        return True
    if result.moved:
        return False
    raise errors.GitError(f"push to {shown} branch {branch} was refused by the remote: {result.refused}")


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
                 envs: list[str] | None = None, attempts: int = DEFAULT_ATTEMPTS,
                 timeout: float = remote.DEFAULT_TIMEOUT) -> Published:
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
                         attempts=attempts, timeout=timeout)
