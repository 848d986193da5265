"""Reuse the last rendering when no input changed (the no-op re-render).

A render reads every spec, checks it and fills every template; when nothing it reads has
changed, the result is the same bytes. The cache key is a BLAKE2 digest over every input
file's path and bytes -- ``meshgen.yaml``, ``apps/``, ``environments/``, ``status/``, the repo's
``templates/`` -- plus meshgen's own code, templates and schemas, the environments asked for
and the strictness. A hit returns the stored :class:`~generator.render.render.Rendering`; anything
else renders afresh. The cache lives in the repository's git directory
(``.git/meshgen/render-cache.pickle``; a worktree's own git directory), so it is never
committed, and only there: a directory that is not a git checkout is rendered afresh every time. ``MESHGEN_NO_CACHE=1`` turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from generator import resources
from generator.errors import DiskFull

if TYPE_CHECKING:
    from generator.render.render import Rendering

_FORMAT = 1


def _digest_tree(h: "hashlib._Hash", base: Path, label: str, root: Path | None = None) -> None:
    """Hash every file under ``base``. Under a repository ``root``, only regular files inside
    it are read; a link out of it, a dangling link or an odd file is hashed by its name and
    kind (so the key changes and the real render reports it), never read."""
    if not (base.exists() or base.is_symlink()):
        return
    if root is not None and not (base.is_dir() and not base.is_symlink()) and not _readable(root, base):
        h.update(f"\0{label}\0odd\0{os.path.islink(base) and os.readlink(base)}".encode())
        return
    paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if not p.is_dir() or p.is_symlink())
    for path in paths:
        h.update(f"\0{label}/{path.relative_to(base).as_posix()}\0".encode())
        if root is None or _readable(root, path):
            h.update(path.read_bytes())
        else:
            h.update(f"odd\0{path.is_symlink() and os.readlink(path)}".encode())


def _readable(root: Path, path: Path) -> bool:
    import stat

    from generator.spec.paths import inside

    try:
        return stat.S_ISREG(os.stat(path).st_mode) and inside(root, path)
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

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key

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
        h = hashlib.blake2b(digest_size=20)
        h.update(_code_digest())
        h.update(repr((sorted(envs or []), strict, sorted(paths.items()))).encode())
        _digest_tree(h, root / SETTINGS_FILE, "settings", root)
        for name in ("apps", "environments", "status", "templates"):
            _digest_tree(h, root / paths[name], name, root)
        return cls(git_dir / "meshgen" / "render-cache.pickle", h.hexdigest())

    def get(self) -> "Rendering | None":
        """The stored rendering if its key matches, else ``None`` (a damaged cache is a miss)."""
        try:
            with self.path.open("rb") as f:
                key, rendering = pickle.load(f)
        except Exception:  # missing, truncated or from another version: render afresh
            return None
        return rendering if key == self.key else None

    def put(self, rendering: "Rendering") -> None:
        """Store ``rendering`` (atomically; failures to write the cache are ignored)."""
        from generator.render.output import atomic_write

        state = dict(rendering.__dict__)
        state.pop("repo", None)
        clone = type(rendering).__new__(type(rendering))
        clone.__dict__.update(state)
        try:
            atomic_write(self.path, pickle.dumps((self.key, clone), protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, DiskFull):
            pass
