"""Reuse the last rendering when no input changed (the no-op re-render).

A render reads every spec, checks it and fills every template; when nothing it reads has
changed, the result is the same bytes. The cache key is a BLAKE2 digest over every input
file's path and bytes -- ``meshgen.yaml``, ``apps/``, ``environments/``, ``status/``, the repo's
``templates/`` -- plus meshgen's own code, templates and schemas, the environments asked for
and the strictness. A hit returns the stored rendering (a :class:`CachedRendering`); anything
else renders afresh. The cache lives in the repository's git directory
(``.git/meshgen/render-cache.pickle``; a worktree's own git directory), so it is never
committed, and only there: a directory that is not a git checkout is rendered afresh every time. ``MESHGEN_NO_CACHE=1`` turns it off.

Computing the key does not read a file whose size, modification time (nanoseconds), inode
and change time are those recorded beside its digest the last time (``.git/meshgen/stat-index.pickle``),
as git's index does for ``git status``. A file modified within :data:`RACY_SECONDS` of the
moment its digest was recorded is "racily clean" (git's term): it could have changed again
within the file system's timestamp granularity without its times showing it, so its
digest is never reused and it is read again every time until it is older. Symbolic links
and odd files are always looked at afresh. meshgen's own code, templates and schemas are
looked up in the same index, and the directories ``meshgen.yaml`` configures are kept in it by
that file's digest, so a hit reads no file but the two cache files.

A hit imports only this module and what it needs (no YAML, Jinja2 or JSON Schema library):
:class:`CachedRendering` is defined here, its objects unpickled (and their module imported)
only when first asked for, so a no-op ``meshgen render`` writes files only.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator import resources
from generator.errors import DiskFull

#: The repository's settings file: :data:`generator.spec.config.SETTINGS_FILE`, named here too
#: because a hit imports no spec loader.
SETTINGS_FILE = "meshgen.yaml"

if TYPE_CHECKING:
    from generator.render.render import Rendering

_FORMAT = 3
#: A file modified this close to (or after) the moment its digest was recorded is read again.
RACY_SECONDS = 2.0


class _Stats:
    """Digests of files by path, each with the ``stat`` it was taken at (the stat index)."""

    def __init__(self, entries: dict[str, tuple[tuple[int, int, int, int], bytes]] | None = None,
                 settings: dict[bytes, dict[str, str]] | None = None) -> None:
        self.old = entries or {}
        self.new: dict[str, tuple[tuple[int, int, int, int], bytes]] = {}
        self.started = time.time_ns()
        self.reads = 0
        #: ``{digest of meshgen.yaml (or of its absence): the directories it configures}``,
        #: recorded when that file last loaded without error
        self.settings_old = settings or {}
        self.settings: dict[bytes, dict[str, str]] = {}

    @classmethod
    def load(cls, index: Path) -> "_Stats":
        """The stat index stored at ``index``; an empty one when it is missing, damaged or
        from another version (every file is then read)."""
        try:
            with index.open("rb") as f:
                version, entries, settings = pickle.load(f)
            if version == _FORMAT:
                return cls(entries, settings)
        except Exception:
            pass
        return cls()

    def dumps(self) -> bytes:
        return pickle.dumps((_FORMAT, self.new, self.settings), protocol=pickle.HIGHEST_PROTOCOL)

    def digest(self, path: str, st: os.stat_result) -> bytes:
        """The BLAKE2 digest of the regular file ``path`` whose ``lstat`` is ``st``."""
        key = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        known = self.old.get(path)
        if known is not None and known[0] == key:
            digest = known[1]
        else:
            digest = hashlib.blake2b(Path(path).read_bytes(), digest_size=20).digest()
            self.reads += 1
        # A write within the same timestamp tick as the recording would leave the times as
        # recorded: racily clean. (Setting the times back with utime changes the ctime.)
        racy = st.st_mtime_ns >= self.started - int(RACY_SECONDS * 1e9)
        if not racy:
            self.new[path] = (key, digest)
        return digest

    @property
    def changed(self) -> bool:
        return self.new != self.old or self.settings != self.settings_old


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


def _code_digest(stats: _Stats) -> bytes:
    """The digest of meshgen's own code (every ``.py`` of ``generator/``, not only render's),
    templates and schemas, each file's digest taken from ``stats`` when its stat shows it
    unchanged."""
    h = hashlib.blake2b(digest_size=20)
    h.update(str(_FORMAT).encode())
    package = Path(__file__).resolve().parent.parent
    entries: list[tuple[str, str, os.stat_result | None]] = []
    _walk(str(package), "", entries)
    for rel, path, est in sorted(entries):
        # source only: bytecode changes as it is compiled
        if rel.endswith(".py") and "__pycache__" not in rel.split("/"):
            h.update(f"\0generator/{rel}\0".encode())
            h.update(stats.digest(path, est) if est is not None and stat.S_ISREG(est.st_mode)
                     else Path(path).read_bytes())
    _digest_tree(h, resources.templates_dir(), "templates", stats=stats)
    _digest_tree(h, resources.schemas_dir(), "schemas", stats=stats)
    return h.digest()


@functools.cache
def _own_code_digest() -> bytes:
    """:func:`_code_digest` read afresh, once per process (for records kept without a stat index)."""
    return _code_digest(_Stats())


def _settings_paths(root: Path, digest: bytes, stats: _Stats) -> dict[str, str] | None:
    """The directories ``meshgen.yaml`` (whose digest is ``digest``) configures: recorded in
    ``stats`` when that file last loaded, else loaded now (:func:`generator.spec.config.load_settings`);
    ``None`` when it does not load (the real render reports it)."""
    paths = stats.settings_old.get(digest)
    if paths is None:
        from generator.errors import MeshgenError
        from generator.spec.config import load_settings

        try:
            paths = dict(load_settings(root).paths)
        except MeshgenError:
            return None
    stats.settings[digest] = paths
    return paths


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
        index = git_dir / "meshgen" / "stat-index.pickle"
        stats = _Stats.load(index)
        settings = hashlib.blake2b(digest_size=20)
        _digest_tree(settings, root / SETTINGS_FILE, "settings", root, stats)
        paths = _settings_paths(root, settings.digest(), stats)
        if paths is None:
            return None  # let the real render report it
        h = hashlib.blake2b(digest_size=20)
        h.update(_code_digest(stats))
        h.update(repr((sorted(envs or []), strict, sorted(paths.items()))).encode())
        h.update(settings.digest())
        for name in ("apps", "environments", "status", "templates"):
            _digest_tree(h, root / paths[name], name, root, stats)
        if stats.changed:
            _store(index, stats.dumps())
        return cls(git_dir / "meshgen" / "render-cache.pickle", h.hexdigest(), stats.reads)

    def get(self) -> "CachedRendering | None":
        """The stored rendering if its key matches, else ``None`` (a damaged cache is a miss)."""
        try:
            with self.path.open("rb") as f:
                key, rendering = pickle.load(f)
        except Exception:  # missing, truncated or from another version: render afresh
            return None
        return rendering if key == self.key else None

    def put(self, rendering: "Rendering") -> None:
        """Store ``rendering`` (atomically; failures to write the cache are ignored), to be
        read back as a :class:`CachedRendering` (its objects pickled apart)."""
        state = dict(rendering.__dict__)
        state.pop("repo", None)
        objects = state.pop("objects")
        state["object_count"] = len(objects)
        state["_objects"] = pickle.dumps(objects, protocol=pickle.HIGHEST_PROTOCOL)
        clone = CachedRendering.__new__(CachedRendering)
        clone.__dict__.update(state)
        _store(self.path, pickle.dumps((self.key, clone), protocol=pickle.HIGHEST_PROTOCOL))


def cached(root: Path, envs: list[str] | None = None, strict: bool = False) -> "CachedRendering | None":
    """The stored rendering of ``root`` when none of its inputs changed (what
    :func:`generator.render.render.render_repo` would return from the cache), else ``None``."""
    store = RenderCache.for_repo(root, envs, strict)
    return store.get() if store is not None else None


class CachedRendering:
    """A :class:`~generator.render.render.Rendering` from the render cache, with the same
    attributes: its files are at hand, its objects (:class:`~generator.render.render.RenderedObject`)
    unpickled when first asked for, and ``object_count`` says how many without unpickling them."""

    files: dict[str, bytes]
    envs: list[str]
    all_envs: list[str]
    rendered_dir: str
    root: Path
    applied: dict[tuple[str, str], tuple[str, str, int] | None]
    object_count: int

    @functools.cached_property
    def objects(self) -> list[Any]:
        return pickle.loads(self.__dict__.pop("_objects"))

    @functools.cached_property
    def repo(self) -> Any:
        """The loaded repository (:class:`~generator.spec.config.Repo`), loaded on first use."""
        from generator.spec.config import load_repo

        return load_repo(self.root)


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
            if code != _own_code_digest() or not isinstance(known, set):
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
            _store(self.path, pickle.dumps((_own_code_digest(), self.seen), protocol=pickle.HIGHEST_PROTOCOL))
