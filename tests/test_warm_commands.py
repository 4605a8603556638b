"""tests/warm_commands.py: a warm command ends as a fresh process would, so the tests that use it still test the
command: its status, streams, folder, environment and arguments, a process of its own each time."""

import os
import signal
import subprocess
import time

import psutil


def warm(warm_bin, *argv, cwd=None, **env) -> subprocess.CompletedProcess:
    command = [str(warm_bin / argv[0]), *map(str, argv[1:])]
    return subprocess.run(command, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_status_streams_folder_and_environment_are_the_callers(warm_bin, tmp_path):
    code = "import os, sys; print(os.getcwd(), os.environ['ASKED']); print('to stderr', file=sys.stderr); sys.exit(3)"
    done = warm(warm_bin, "python", "-c", code, cwd=tmp_path, ASKED="yes")
    assert (done.returncode, done.stdout, done.stderr) == (3, f"{tmp_path} yes\n", "to stderr\n")


def test_an_exception_and_a_signal_end_it_as_they_end_python(warm_bin):
    raised = warm(warm_bin, "python", "-c", "raise ValueError('told')")
    assert raised.returncode == 1 and raised.stderr.endswith("ValueError: told\n")
    killed = warm(warm_bin, "python", "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")
    assert killed.returncode == -signal.SIGTERM


def test_each_command_is_a_process_of_its_own(warm_bin):
    pids = [warm(warm_bin, "python", "-c", "import os; print(os.getpid())").stdout for _ in range(2)]
    assert pids[0] != pids[1]
    assert warm(warm_bin, "python", "-c", "import hfcls; hfcls.left_behind = 1").returncode == 0
    assert warm(warm_bin, "python", "-c", "import hfcls; print(hasattr(hfcls, 'left_behind'))").stdout == "False\n"


def test_scripts_modules_and_console_scripts_get_their_arguments(warm_bin, tmp_path):
    (tmp_path / "script.py").write_text("import sys; print(sys.argv, sys.path[0])")
    done = warm(warm_bin, "python", "-u", tmp_path / "script.py", "a", cwd=tmp_path)
    assert done.stdout == f"[{str(tmp_path / 'script.py')!r}, 'a'] {tmp_path}\n"
    (tmp_path / "mine.py").write_text("import sys; print(sys.argv[1:], sys.path[0])")
    assert warm(warm_bin, "python", "-m", "mine", "b", cwd=tmp_path).stdout == f"['b'] {tmp_path}\n"
    verify = warm(warm_bin, "hfcls-verify", "--help")
    assert verify.returncode == 0 and verify.stdout.startswith("usage: hfcls-verify")
    assert warm(warm_bin, "hfcls-verify", "--no-such-flag").returncode == 2


def test_a_shim_that_is_killed_takes_its_command_along(warm_bin, tmp_path):
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"
    shim = subprocess.Popen([str(warm_bin / "python"), "-c", code, str(tmp_path / "pid")])
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    command = psutil.Process(int((tmp_path / "pid").read_text()))
    shim.kill()
    shim.wait()
    command.wait(timeout=10)
