"""The tick lock: one tick of the bot at a time in one clone, and recovery after a killed one.

A tick holds an exclusive ``fcntl.flock`` (see flock(2)) on ``<git-dir>/meshgen-bot.lock``
from its first git command to its last. The kernel drops the lock when the holding process
dies, ``kill -9`` included, so the lock is held exactly while a tick of this clone is alive:

- a tick that finds the lock held waits for it, polling, at most ``wait`` seconds
  (``$MESHGEN_BOT_LOCK_WAIT``, default :data:`DEFAULT_WAIT`), then stops with
  :class:`TickLockBusy` (exit 3) naming the holder's pid and start time;
- while it holds the lock the file says ``ticking pid=N started=T``; a clean end empties it.
  A tick that gets the lock and finds ``ticking`` in it knows the previous tick died
  mid-way. Git's own lock files left in the git directory (``index.lock``, ``HEAD.lock``,
  ``refs/heads/main.lock``, ``packed-refs.lock``, ... see gitrepository-layout(5)) can then
  only be that tick's, as no other tick is alive and the clone is the bot's: they are
  removed (:attr:`TickLock.removed`), and the tick goes on to put back the interrupted
  tick's uncommitted files (:meth:`generator.bot.vcs.Workspace.restore`).

A git lock file found after a tick that ended cleanly is left alone: it belongs to some other
git process (a person working in the bot's clone), and git's own error says what to do.

Usage::

    with TickLock(git_dir) as held:
        if held.removed: ...
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

from generator.errors import GitError, UsageError

#: The lock file's name inside the git directory.
LOCK_NAME = "meshgen-bot.lock"
#: Environment variable: seconds a tick waits for a live tick's lock before giving up.
WAIT_ENV = "MESHGEN_BOT_LOCK_WAIT"
#: Seconds waited by default: a long tick (hundreds of rollouts, a slow remote) fits.
DEFAULT_WAIT = 120.0
_TICKING = "ticking"


class TickLockBusy(GitError):
    """Another tick of this clone held the tick lock for longer than the wait (exit 3)."""


def default_wait(environ: dict[str, str] | None = None) -> float:
    """Seconds to wait for the lock: ``$MESHGEN_BOT_LOCK_WAIT`` or :data:`DEFAULT_WAIT`.

    Raises:
        UsageError: the variable is not a number of seconds >= 0.
    """
    text = (os.environ if environ is None else environ).get(WAIT_ENV, "").strip()
    if not text:
        return DEFAULT_WAIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"{WAIT_ENV}={text!r}: expected a number of seconds >= 0")
    return seconds


class TickLock:
    """The exclusive lock of one tick on one clone (a context manager).

    Args:
        git_dir: the clone's git directory (``.git``), where the lock file lives.
        wait: seconds to wait for a live holder; ``None`` for :func:`default_wait`.
        poll: seconds between two attempts while waiting (it grows up to 0.5 s).

    Attributes:
        path: the lock file.
        interrupted: the previous tick died while holding the lock.
        removed: git lock files of that tick removed on acquiring (paths relative to
            ``git_dir``), empty unless ``interrupted``.
    """

    def __init__(self, git_dir: Path | str, wait: float | None = None, poll: float = 0.02) -> None:
        self.git_dir = Path(git_dir)
        self.path = self.git_dir / LOCK_NAME
        self.wait = default_wait() if wait is None else wait
        self.poll = poll
        self.interrupted = False
        self.removed: list[str] = []
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "TickLock":
        """Take the lock, waiting up to ``wait`` seconds; then clean up after a killed tick.

        Raises:
            TickLockBusy: a live tick held it the whole wait.
            GitError: the lock file cannot be opened or a stale git lock cannot be removed.
        """
        if self._fd is not None:
            raise RuntimeError("TickLock is not reentrant")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise GitError(f"cannot open the tick lock {self.path}: {e.strerror}") from e
        deadline, pause = time.monotonic() + self.wait, self.poll
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise GitError(f"cannot lock {self.path}: {e.strerror}") from e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TickLockBusy(f"another meshgen tick holds {self.path} ({_holder(fd) or 'pid unknown'}); "
                                       f"waited {self.wait:g} s; it ends on its own, or stops with its process "
                                       f"(raise {WAIT_ENV} to wait longer)")
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.5)
            previous = _read(fd)
            self.interrupted = previous.startswith(_TICKING)
            _write(fd, f"{_TICKING} pid={os.getpid()} started={_now()}\n")
            if self.interrupted:
                self.removed = remove_stale_git_locks(self.git_dir)
        except BaseException:
            os.close(fd)  # closing drops the flock too
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Mark the tick as ended cleanly and drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            _write(fd, "")
        finally:
            os.close(fd)

    def __enter__(self) -> "TickLock":
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def remove_stale_git_locks(git_dir: Path | str) -> list[str]:
    """Remove git's ``*.lock`` files from ``git_dir`` (``objects/`` aside, and not
    :data:`LOCK_NAME`). Only for when no git process can be working in the clone.

    Returns:
        The removed files, relative to ``git_dir``, sorted.

    Raises:
        GitError: a lock file could not be removed.
    """
    git_dir = Path(git_dir)
    removed = []
    for folder, dirs, files in os.walk(git_dir):
        if Path(folder) == git_dir and "objects" in dirs:
            dirs.remove("objects")
        for name in files:
            if not name.endswith(".lock") or name == LOCK_NAME:
                continue
            path = Path(folder) / name
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                raise GitError(f"cannot remove the stale git lock {path}: {e.strerror}") from e
            removed.append(path.relative_to(git_dir).as_posix())
    return sorted(removed)


def _holder(fd: int) -> str:
    """``pid N, started T`` from the lock file's content, or ''."""
    fields = dict(part.split("=", 1) for part in _read(fd).split()[1:] if "=" in part)
    if "pid" not in fields:
        return ""
    return f"pid {fields['pid']}" + (f", started {fields['started']}" if "started" in fields else "")


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode("utf-8", "replace")
    except OSError:
        return ""


def _write(fd: int, text: str) -> None:
    data = text.encode()  # written over the old text, then cut: never empty on the way
    if data:
        os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
    os.fsync(fd)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
