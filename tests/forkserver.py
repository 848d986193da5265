"""``meshgen`` as a subprocess without paying Python's start-up and third-party imports for each run.

Most of the suite's CPU is spent in child processes, and much of a short ``meshgen`` run is
the interpreter starting and importing click, rich, PyYAML, jsonschema, Jinja2, httpx and
GitPython. A fork server (the idea of :mod:`multiprocessing`'s ``forkserver`` start method)
imports those once per test worker and forks one child per run: each run is still its own
process, started the moment it is asked for, with the caller's working directory,
environment, arguments, standard streams and exit code, and it imports meshgen itself
afresh, as ``python -m generator`` does (``runpy``, ``__main__`` included, so click names the
program as it does there). Interpreter-wide settings cannot change after start-up, so a run
whose environment sets ``PYTHON*``, locale or console variables differently from the
server's is started as a plain subprocess instead (:func:`usable`).

Protocol, over a Unix socket in the worker's temporary folder: the client sends one JSON line
(``argv``, ``cwd``, ``env``) with the file descriptors of its stdout and stderr files
attached (``SCM_RIGHTS``); the server answers the child's pid, then its exit status.
"""

from __future__ import annotations

import json
import locale
import os
import select
import signal
import socket
import subprocess
import sys
from pathlib import Path

#: Environment variables read when the interpreter or a console starts, not per run: a run
#: that sets any of them differently from the server's goes through a plain subprocess.
STARTUP_PREFIXES = ("PYTHON", "LC_", "LANG", "NO_COLOR", "FORCE_COLOR", "TERM", "COLUMNS", "LINES")

PRELOAD = ("click", "rich.console", "rich.table", "rich.measure", "yaml", "jsonschema", "fastjsonschema", "jinja2",
           "httpx", "git", "re2", "celpy")


def usable(env: dict[str, str], server_env: dict[str, str]) -> bool:
    """Whether a run with ``env`` behaves in a forked child as in a fresh interpreter."""
    keys = {k for k in (*env, *server_env) if k.startswith(STARTUP_PREFIXES)}
    return all(env.get(k) == server_env.get(k) for k in keys)


def _child(request: dict, out_fd: int, err_fd: int) -> None:
    """In the forked child: become ``python -m generator ARGV`` in ``cwd`` with ``env``; never returns."""
    code = 1
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        for fd in (devnull, out_fd, err_fd):
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        import tempfile
        tempfile.tempdir = None  # TMPDIR is read again, as a new interpreter would
        sys.path[0] = os.getcwd()  # as ``-m`` puts it
        sys.argv = ["-m", *request["argv"]]
        import runpy
        try:
            runpy.run_module("generator", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
        except KeyboardInterrupt:
            code = 128 + signal.SIGINT
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str) -> None:
    """Listen on ``path``; fork a child per request; report each one's pid and exit status."""
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    print("ready", flush=True)
    waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
    while True:
        ready, _, _ = select.select([server, sys.stdin, *waiting], [], [])
        for item in ready:
            if item is sys.stdin:  # the test worker is gone (its end of the pipe closed): leave nothing
                server.close()
                for leftover in (lambda: os.unlink(path), lambda: os.rmdir(os.path.dirname(path))):
                    try:
                        leftover()
                    except OSError:
                        pass
                return
            if item is server:
                conn, _ = server.accept()
                msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
                request = json.loads(msg.decode())
                pid = os.fork()
                if pid == 0:
                    server.close()
                    conn.close()
                    _child(request, fds[0], fds[1])
                for fd in fds:
                    os.close(fd)
                conn.sendall(f"{pid}\n".encode())
                waiting[os.pidfd_open(pid)] = (pid, conn)
            else:
                pid, conn = waiting.pop(item)
                _, status = os.waitpid(pid, 0)
                os.close(item)
                try:
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                conn.close()


def _text(data: bytes) -> str:
    """Bytes as ``subprocess.run(text=True)`` gives them: the locale's encoding, universal newlines."""
    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


class ForkServer:
    """The client: :meth:`run` as ``subprocess.run([python, -m, generator, *argv], ...)``."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.path = str(folder / "meshgen.sock")
        self.env = dict(env)
        self.proc = subprocess.Popen([sys.executable, __file__, self.path], env=self.env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the meshgen fork server did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        import tempfile
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
                socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            request = json.dumps({"argv": argv, "cwd": str(cwd), "env": env}).encode()
            socket.send_fds(conn, [request], [out.fileno(), err.fileno()])
            conn.settimeout(timeout)
            reply = conn.makefile("r")
            pid = int(reply.readline())
            try:
                line = reply.readline()
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                reply.readline()
                raise subprocess.TimeoutExpired([sys.executable, "-m", "generator", *argv], timeout) from None
            code = int(line)
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess([sys.executable, "-m", "generator", *argv], code,
                                               _text(out.read()), _text(err.read()))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe:
                pipe.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


if __name__ == "__main__":
    serve(sys.argv[1])
