"""The console scripts as a user runs them: a real subprocess, or the same `main([...])` in this process.

A subprocess costs a fresh interpreter and, for most commands, a second import of torch; each script is
run so once, for the exit-code contract (tests/cli/test_console_scripts.py). Everything else calls
`main` in-process (the `command` fixture), which ends the same way: a status, stdout, stderr.
"""

import configparser
import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}


def launch_env(*path_first, warm: Path | None = None, **variables) -> dict:
    """A user's shell: this interpreter's `accelerate` and `python` first on PATH. With `warm` (the
    warm_bin fixture), they and the processes they launch start warm (tests/warm_commands.py)."""
    if warm:
        path_first, variables["PYTHON_EXEC"] = (warm, *path_first), warm / "python"  # torch's launcher reads it
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "NNODES", "NODE_RANK", "MASTER_ADDR")}
    env["PATH"] = os.pathsep.join([*map(str, path_first), str(Path(sys.executable).parent), env["PATH"]])
    env["PYTHONPATH"] = str(REPO)
    env.update({k: str(v) for k, v in variables.items()})
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two_processes(warm_bin: Path, module: str, *args, port: int | None = None, cwd=None, **variables):
    """`accelerate launch` of `-m module args` on two CPU processes of this machine (gloo), started warm
    (the warm_bin fixture), `variables` added to the environment; the launch must succeed."""
    launch = ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port or free_port())]
    command = [str(warm_bin / "python"), *launch, "-m", module, *map(str, args)]
    env = launch_env(warm=warm_bin, **variables)
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def console_scripts() -> dict:
    """{script name: module} of every console script setup.cfg declares."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = {}
    for line in filter(str.strip, config["options.entry_points"]["console_scripts"].splitlines()):
        name, target = line.split("=")
        scripts[name.strip()] = target.split(":")[0].strip()
    return scripts


def run(script: str, *args, cwd=None) -> subprocess.CompletedProcess:
    """A console script (hfcls-*) or a module (python -m) in a subprocess."""
    command = (
        [str(BIN / script), *map(str, args)]
        if script.startswith("hfcls-")
        else [sys.executable, "-m", script, *map(str, args)]
    )
    return subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


def run_in_process(script: str, args, capsys) -> subprocess.CompletedProcess:
    """`script`'s main(args) here, its exit status and what it printed, as `run` would give them."""
    module = console_scripts().get(script, script)
    main = importlib.import_module(module).main
    capsys.readouterr()  # what earlier steps printed is not this command's
    try:
        status = main([str(arg) for arg in args]) or 0
    except SystemExit as exit:
        status = exit.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([script, *args], status, out, err)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def user_error(result, *words) -> str:
    """Exit 2, no traceback, one `error:` line naming every word."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]
