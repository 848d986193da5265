"""Reuse the last rendering when no input changed (the no-op re-render).

A render reads every spec, checks it and fills every template; when nothing it reads has
changed, the result is the same bytes. The cache key is a BLAKE2 digest over every input
file's path and bytes -- ``meshgen.yaml``, ``apps/``, ``environments/``, ``status/``, the repo's
``templates/`` -- plus meshgen's own code, templates and schemas, the environments asked for
and the strictness. A hit returns the stored :class:`~generator.render.render.Rendering`; anything
else renders afresh. The cache lives in the repository's git directory
(``.git/meshgen/render-cache.pickle``; a worktree's own git directory), so it is never
committed, and only there: a directory that is not a git checkout is rendered afresh every time. ``MESHGEN_NO_CACHE=1`` turns it off.

Computing the key does not read a file whose size, modification time (nanoseconds), inode
and change time are those recorded beside its digest the last time (``.git/meshgen/stat-index.pickle``),
as git's index does for ``git status``. A file modified within :data:`RACY_SECONDS` of the
moment its digest was recorded is "racily clean" (git's term): it could have changed again
within the file system's timestamp granularity without its times showing it, so its
digest is never reused and it is read again every time until it is older. Symbolic links
and odd files are always looked at afresh.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from generator import resources
from generator.errors import DiskFull

if TYPE_CHECKING:
    from generator.render.render import Rendering

_FORMAT = 2
#: A file modified this close to (or after) the moment its digest was recorded is read again.
RACY_SECONDS = 2.0


class _Stats:
    """Digests of files by path, each with the ``stat`` it was taken at (the stat index)."""

    def __init__(self, entries: dict[str, tuple[tuple[int, int, int, int], bytes]] | None = None) -> None:
        self.old = entries or {}
        self.new: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}
        self.started = time.time_ns()
        self.reads = 0

    def digest(self, path: str, st: os.stat_result) -> bytes:
        """The BLAKE2 digest of the regular file ``path`` whose ``lstat`` is ``st``."""
        key = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        known = self.old.get(path)
        if known is not None and known[0] == key:
            digest = known[1]
        else:
            with open(path, "rb") as f:
                digest = hashlib.blake2b(f.read(), digest_size=20).digest()
            self.reads += 1
        # A write within the same timestamp tick as the recording would leave the times as
        # recorded: racily clean. (Setting the times back with utime changes the ctime.)
        racy = st.st_mtime_ns >= self.started - int(RACY_SECONDS * 1e9)
        if not racy:
            self.new[path] = (key, digest)
        return digest

    @property
    def changed(self) -> bool:
        return self.new != self.old


def _digest_tree(h: "hashlib._Hash", base: Path, label: str, root: Path | None = None,
                 stats: _Stats | None = None) -> None:
    """Hash every file under ``base``. Under a repository ``root``, only regular files inside
    it are read; a link out of it, a dangling link or an odd file is hashed by its name and
    kind (so the key changes and the real render reports it), never read. A regular file
    is hashed by its digest, from ``stats`` when its ``stat`` shows it unchanged."""
    stats = stats or _Stats()
    try:
        st = os.lstat(base)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode) and root is not None and not _readable(root, base, directory=True):
        h.update(f"\0{label}\0odd directory".encode())  # reached through a link out of the repository
        return
    if stat.S_ISDIR(st.st_mode):
        entries: list[tuple[str, str, os.stat_result | None]] = []
        _walk(str(base), "", entries)
        entries.sort()
    else:
        entries = [("", str(base), st)]
    for rel, path, est in entries:
        h.update(f"\0{label}/{rel}\0".encode())
        if est is not None and stat.S_ISREG(est.st_mode):  # a regular file, no link on the way
            h.update(stats.digest(path, est))
        elif root is None or _readable(root, Path(path)):
            h.update(Path(path).read_bytes())
        else:
            h.update(f"odd\0{os.path.islink(path) and os.readlink(path)}".encode())


def _walk(top: str, prefix: str, out: list[tuple[str, str, "os.stat_result | None"]]) -> None:
    """``(relative path, path, lstat)`` of every file under the directory ``top``, links not
    followed (a link is listed, with its ``lstat``'s mode kept out: ``None``)."""
    try:
        scan = list(os.scandir(top))
    except OSError:
        return
    for entry in scan:
        rel = f"{prefix}{entry.name}"
        try:
            est = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(est.st_mode):
            _walk(entry.path, rel + "/", out)
        elif stat.S_ISLNK(est.st_mode):
            out.append((rel, entry.path, None))
        else:
            out.append((rel, entry.path, est))


def _readable(root: Path, path: Path, directory: bool = False) -> bool:
    from generator.spec.paths import inside

    try:
        mode = os.stat(path).st_mode
        return (stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)) and inside(root, path)
    except OSError:
        return False


@functools.cache
def _code_digest() -> bytes:
    h = hashlib.blake2b(digest_size=20)
    h.update(str(_FORMAT).encode())
    package = Path(__file__).resolve().parent.parent  # the whole of generator/, not only render/
    for path in sorted(package.rglob("*.py")):  # source only: __pycache__ changes as it is compiled
        h.update(f"\0generator/{path.relative_to(package).as_posix()}\0".encode())
        h.update(path.read_bytes())
    _digest_tree(h, resources.templates_dir(), "templates")
    _digest_tree(h, resources.schemas_dir(), "schemas")
    return h.digest()


def _git_dir(root: Path) -> Path | None:
    """The git directory of a checkout rooted at ``root``: ``.git`` itself, or where a worktree's
    ``.git`` file points (``gitdir: ...``); ``None`` when ``root`` is not a checkout's root."""
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    if dot_git.is_file():
        text = dot_git.read_text(errors="replace").strip()
        if text.startswith("gitdir:"):
            target = Path(text[len("gitdir:"):].strip())
            target = target if target.is_absolute() else (root / target)
            return target if target.is_dir() else None
    return None


class RenderCache:
    """One repository's cached rendering, keyed by the digest of everything it was made from."""

    def __init__(self, path: Path, key: str, reads: int = 0) -> None:
        self.path = path
        self.key = key
        self.reads = reads  # input files read to compute the key (the others' stat showed them unchanged)

    @classmethod
    def for_repo(cls, root: Path, envs: list[str] | None, strict: bool) -> "RenderCache | None":
        """The cache of ``root``, or ``None`` when it cannot or should not be used."""
        git_dir = _git_dir(root)
        if os.environ.get("MESHGEN_NO_CACHE") or git_dir is None:
            return None
        from generator.errors import MeshgenError
        from generator.spec.config import SETTINGS_FILE, load_settings

        try:
            paths = load_settings(root).paths
        except MeshgenError:
            return None  # let the real render report it
        index = git_dir / "meshgen" / "stat-index.pickle"
        try:
            with index.open("rb") as f:
                stats = _Stats(pickle.load(f))
        except Exception:  # missing, damaged or from another version: every file is read
            stats = _Stats()
        h = hashlib.blake2b(digest_size=20)
        h.update(_code_digest())
        h.update(repr((sorted(envs or []), strict, sorted(paths.items()))).encode())
        _digest_tree(h, root / SETTINGS_FILE, "settings", root, stats)
        for name in ("apps", "environments", "status", "templates"):
            _digest_tree(h, root / paths[name], name, root, stats)
        if stats.changed:
            _store(index, pickle.dumps(stats.new, protocol=pickle.HIGHEST_PROTOCOL))
        return cls(git_dir / "meshgen" / "render-cache.pickle", h.hexdigest(), stats.reads)

    def get(self) -> "Rendering | None":
        """The stored rendering if its key matches, else ``None`` (a damaged cache is a miss)."""
        try:
            with self.path.open("rb") as f:
                key, rendering = pickle.load(f)
        except Exception:  # missing, truncated or from another version: render afresh
            return None
        return rendering if key == self.key else None

    def put(self, rendering: "Rendering", cached: type) -> None:
        """Store ``rendering`` (atomically; failures to write the cache are ignored), to be
        read back as a ``cached`` (a :class:`~generator.render.render.CachedRendering`: its
        objects pickled apart, unpickled when first asked for)."""
        state = dict(rendering.__dict__)
        state.pop("repo", None)
        state["_objects"] = pickle.dumps(state.pop("objects"), protocol=pickle.HIGHEST_PROTOCOL)
        clone = cached.__new__(cached)
        clone.__dict__.update(state)
        _store(self.path, pickle.dumps((self.key, clone), protocol=pickle.HIGHEST_PROTOCOL))


def _store(path: Path, data: bytes) -> None:
    """Write a cache file atomically; a cache that cannot be written (a full disk included:
    :class:`~generator.errors.DiskFull`) is only a later miss, never the command's failure."""
    from generator.render.output import atomic_write

    try:
        atomic_write(path, data)
    except (OSError, DiskFull):
        pass


class CheckedApps:
    """Merged App specs that passed every check of their own, by the digest of what they hold
    (``.git/meshgen/checked-apps.pickle``), for the rollout tick.

    A tick renders only the apps it changes but checks every app of their environments, so
    that it never commits beside a spec that does not render; at 5,000 apps those checks
    are about a fifth of its render time. A spec whose merged content (name, environment and
    every value, types included: ``pickle`` tells ``1`` from ``"1"`` and ``True``) and
    meshgen's own code, templates and schemas are those of a spec that passed is not checked
    again: the checks are a function of that content alone. Only passes are kept (an error
    is always found afresh, with its place), and only those of the last tick, so the file
    does not grow. The cross-app checks (hosts, destinations, rollout groups) always run.
    ``MESHGEN_NO_CACHE=1`` turns it off, as it does the render cache.
    """

    FILE = "checked-apps.pickle"

    def __init__(self, path: Path | None, known: set[bytes]) -> None:
        self.path = path
        self.known = known
        self.seen: set[bytes] = set()

    @classmethod
    def for_repo(cls, root: Path) -> "CheckedApps":
        """The record of ``root`` (an empty one that is never stored outside a git checkout)."""
        git_dir = _git_dir(Path(root))
        if os.environ.get("MESHGEN_NO_CACHE") or git_dir is None:
            return cls(None, set())
        path = git_dir / "meshgen" / cls.FILE
        try:
            with path.open("rb") as f:
                code, known = pickle.load(f)
            if code != _code_digest() or not isinstance(known, set):
                known = set()
        except Exception:  # missing, damaged or from another version: every app is checked
            known = set()
        return cls(path, known)

    @staticmethod
    def key(name: str, env: str, data: object) -> bytes | None:
        """The digest of a merged spec's content (``None`` when it cannot be pickled)."""
        try:
            body = pickle.dumps((name, env, data), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return None
        return hashlib.blake2b(body, digest_size=20).digest()

    def passed(self, key: bytes | None) -> bool:
        """Whether a spec of this digest passed its checks before."""
        if key is None or key not in self.known:
            return False
        self.seen.add(key)
        return True

    def add(self, key: bytes | None) -> None:
        """Record that a spec of this digest passed its checks."""
        if key is not None:
            self.seen.add(key)

    def save(self) -> None:
        """Keep this run's passes for the next (a failure to write is a later miss)."""
        if self.path is not None and self.seen != self.known:
            _store(self.path, pickle.dumps((_code_digest(), self.seen), protocol=pickle.HIGHEST_PROTOCOL))
