"""`python` and the console scripts in a warm interpreter, for tests that run dozens of commands.

Each command still runs as a process of its own, with its exit status, its output and its files, but
forked from a server that has imported torch, transformers and datasets once: those imports are most
of a small command's time (about 5 s of CPU), and the doc test runs dozens of commands. The shims on
PATH hand their argv, working folder, environment and standard streams to the server, and exit with
the status of the process it forked. That an installed console script starts and exits on its own is
tests/cli/test_console_scripts.py's to check.

The server is started with the environment its commands run in, so what libraries read from the
environment when they are imported (offline mode, caches, thread counts) is what a fresh process reads.

Shims run under `python -I -S`: this file imports only the standard library at its top.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# What a training or evaluation command imports before its first line of work.
PRELOAD = ("torch", "torchvision", "datasets", "transformers", "accelerate.commands.launch", "hfcls.api")
MESSAGE_BYTES = 1 << 20


@contextlib.contextmanager
def warm_commands(env: dict, scripts: dict):
    """A folder of shims for `python` and each of `scripts` ({name: module}), to put first on PATH."""
    with tempfile.TemporaryDirectory(prefix="warm-") as folder:
        folder = Path(folder)
        address = f"hfcls-warm-{folder.name}"
        server = subprocess.Popen(
            [sys.executable, __file__, address, json.dumps(scripts)], env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            if server.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the warm command server ended with status {server.wait()}")
            for name in ("python", *scripts):
                write_shim(folder / "bin" / name, address, name)
            yield folder / "bin"
        finally:
            server.kill()
            server.wait()


def write_shim(path: Path, address: str, name: str) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        f"#!{sys.executable} -IS\n"
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        f"from warm_commands import call\ncall({address!r}, {name!r})\n"
    )
    path.chmod(0o755)


def call(address: str, name: str) -> None:
    """The shim: run `name sys.argv[1:]` in the server, on this process's streams, and exit as it did."""
    request = {"name": name, "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as conn:
        conn.connect(abstract(address))
        socket.send_fds(conn, [json.dumps(request).encode()], [0, 1, 2])
        status = int(conn.recv(64))
    if status < 0:  # killed by a signal: die of the same one
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    sys.exit(status)


def abstract(address: str) -> str:
    """Linux's abstract socket namespace: no path that a long TMPDIR could push past an address's 108 bytes."""
    return "\0" + address


def serve(address: str, scripts: dict) -> None:
    for module in PRELOAD:
        importlib.import_module(module)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(abstract(address))
    listener.listen()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the handlers
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            handle(conn, scripts)
        conn.close()


def handle(conn: socket.socket, scripts: dict) -> None:
    """One request, in a process of its own: fork the command, wait for it, send back its status."""
    message, fds, _, _ = socket.recv_fds(conn, MESSAGE_BYTES, 3)
    request = json.loads(message)
    pid = os.fork()
    if pid == 0:
        conn.close()
        run(request, fds, scripts)  # ends the process as the command ends
    for fd in fds:
        os.close(fd)
    conn.sendall(str(wait_for(pid, conn)).encode())
    os._exit(0)


def wait_for(pid: int, conn: socket.socket) -> int:
    """The command's exit code (negative: the signal that killed it); a shim that goes away takes it along."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if select.select([conn], [], [], 0.05)[0]:
            os.kill(pid, signal.SIGKILL)


def run(request: dict, fds: list, scripts: dict) -> None:
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    try:
        if request["name"] in scripts:
            sys.argv = [request["name"], *request["argv"]]
            sys.exit(importlib.import_module(scripts[request["name"]]).main())
        run_python(request["argv"])
        status = 0
    except SystemExit as exit:
        status = exit_status(exit.code)
    except BaseException:
        sys.excepthook(*sys.exc_info())
        status = 1
    end(status)


def run_python(argv: list) -> None:
    """`python -c CODE`, `python -m MODULE` or `python FILE`, with the sys.path a fresh interpreter has."""
    if argv[:1] == ["-u"]:  # torch's launcher starts its workers so: their lines reach the log as written
        argv = argv[1:]
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=True)
    if argv[:1] == ["-c"]:
        sys.argv, sys.path[0] = ["-c", *argv[2:]], ""
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    elif argv[:1] == ["-m"]:
        sys.argv, sys.path[0] = [argv[1], *argv[2:]], os.getcwd()
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    elif argv and not argv[0].startswith("-"):
        sys.argv, sys.path[0] = argv, str(Path(argv[0]).resolve().parent)
        runpy.run_path(argv[0], run_name="__main__")
    else:
        os.execv(sys.executable, [sys.executable, *argv])


def exit_status(code) -> int:
    """The status `sys.exit(code)` ends Python with."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def end(status: int) -> None:
    """End as Python ends a process, up to the teardown of the thousands of modules the server imported, which
    costs a forked process 1.7 s (every object it touches is a page copied): threads joined, atexit run, streams
    flushed."""
    threading._shutdown()  # what Python's own exit does first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)


if __name__ == "__main__":
    serve(sys.argv[1], json.loads(sys.argv[2]))
