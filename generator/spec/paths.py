"""Every path meshgen reads or writes stays inside the repository, and is what it seems.

The rules (for ``apps/``, ``environments/``, ``templates/``, ``status/``, ``rendered/`` and
``meshgen.yaml``):

* an input meshgen reads (a spec, a template, a status file) is a regular file whose real
  path lies inside the repository; a symbolic link to such a file is followed, a link that
  dangles or leads out of the repository (``/etc/...``, ``/dev/zero``) is an error naming it;
* anything in ``apps/`` or ``environments/`` named ``*.yaml``/``*.yml`` that is not a regular
  file (a directory, a fifo, a device) is an error naming it, never silently skipped: a spec
  that could not be read must not make its app's output disappear;
* the directories meshgen writes (``rendered/``, ``status/``) and everything in them hold no
  symbolic link and nothing but directories and regular files, so a write or a delete can
  never land outside them.

Errors are :class:`~generator.errors.SpecError` placed at the offending path (exit 1).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from generator.errors import Place, SpecError, as_yaml

_HINT_INPUT = "make it a regular file inside the repository, or remove it"
_HINT_OUTPUT = "remove it: meshgen writes real files and directories there"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def inside(root: Path, path: Path) -> bool:
    """Whether ``path``'s real location (links resolved) is within ``root``'s."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))
    except (OSError, ValueError):
        return False


def input_problem(root: Path, path: Path, shown: str, *, directory: bool = False) -> SpecError | None:
    """Why ``path`` may not be read as an input file (or, with ``directory``, searched as an
    input directory); ``None`` when it may or does not exist at all."""
    try:
        lmode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as e:
        return SpecError(f"cannot be read: {e.strerror}", place=Place(shown), hint=_HINT_INPUT)
    if stat.S_ISLNK(lmode):
        target = os.readlink(path)
        if not os.path.exists(path):
            return SpecError(f"is a dangling symbolic link (to {target})", place=Place(shown), hint=_HINT_INPUT)
        if not inside(root, path):
            return SpecError(f"is a symbolic link to {target}, outside the repository; meshgen reads only "
                             f"files inside it", place=Place(shown), hint=_HINT_INPUT)
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return SpecError(f"cannot be read: {e.strerror}", place=Place(shown), hint=_HINT_INPUT)
    if directory:
        return None if stat.S_ISDIR(mode) else SpecError(f"is {_kind(mode)}, not a directory", place=Place(shown))
    if not stat.S_ISREG(mode):
        return SpecError(f"is {_kind(mode)}, not a regular file", place=Place(shown), hint=_HINT_INPUT)
    return None


def output_problems(root: Path, rel: str) -> list[SpecError]:
    """Symbolic links and odd files at or under the output directory ``rel`` (and in the path
    leading to it), each an error naming it."""
    return scan_output(root, rel)[0]


def scan_output(root: Path, rel: str) -> tuple[list[SpecError], list[str]]:
    """One walk of the output directory ``rel``: the problems :func:`output_problems` names,
    and the repository-relative POSIX paths of the regular files under it (sorted).

    Each directory is listed once with ``os.scandir``, whose entries carry their type
    (``d_type``), so only an entry that is neither a directory nor a regular file costs an
    ``lstat``; links are never followed.
    """
    found: list[SpecError] = []
    path = root
    parts = Path(rel).parts
    for i, part in enumerate(parts):
        path = path / part
        shown = Path(*parts[:i + 1]).as_posix()
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return found, []
        except OSError as e:
            return [SpecError(f"cannot be read: {e.strerror}", place=Place(shown))], []
        if stat.S_ISLNK(mode):
            return [SpecError(f"is a symbolic link (to {os.readlink(path)}); meshgen never writes or deletes "
                              f"through a link", place=Place(shown), hint=_HINT_OUTPUT)], []
        if not stat.S_ISDIR(mode):
            return [SpecError(f"is {_kind(mode)}, where meshgen keeps a directory", place=Place(shown),
                              hint=_HINT_OUTPUT)], []
    files: list[str] = []
    top = f"{Path(rel).as_posix()}/" if parts else ""
    stack = [(str(path), top)]
    while stack:
        directory, shown_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        below = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                below.append((entry.path, f"{shown_dir}{entry.name}/"))
                continue
            shown = f"{shown_dir}{entry.name}"
            if entry.is_file(follow_symlinks=False):
                files.append(shown)
            elif entry.is_symlink():
                found.append(SpecError(f"is a symbolic link (to {os.readlink(entry.path)}); meshgen never writes "
                                       f"or deletes through a link", place=Place(shown), hint=_HINT_OUTPUT))
            else:
                try:
                    mode = os.lstat(entry.path).st_mode
                except OSError:
                    continue
                found.append(SpecError(f"is {_kind(mode)}, not a regular file", place=Place(shown),
                                       hint=_HINT_OUTPUT))
        stack.extend(reversed(below))  # depth first, in name order
    files.sort()
    return found, files


def configured_problems(root: Path, paths: dict[str, str]) -> list[SpecError]:
    """``meshgen.yaml`` ``paths`` that lead out of the repository."""
    found = []
    for name, rel in paths.items():
        target = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not inside(root, target.parent if not
                                                                             target.exists() else target):
            found.append(SpecError(f"paths.{name}: {as_yaml(rel)} is outside the repository",
                                   place=Place("meshgen.yaml"), hint="use a path relative to the repository root"))
    return found
