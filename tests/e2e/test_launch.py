"""The launch/ scripts build the right `accelerate launch` and `srun` command lines; hfcls/train.py runs
as a script under python and accelerate launch.

`accelerate` is replaced by a stub that records its arguments, so the script tests
run no training; tests/e2e/test_multiprocess.py runs the same scripts for real.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hfcls.engine.dist import check_port_free
from hfcls.errors import HfclsError

from conftest import REPO, tiny_recipe_dict, write_recipe

LAUNCH = REPO / "launch"
SLURM_STUB = REPO / "tests" / "slurm_stub"

ACCELERATE_STUB = """#!/usr/bin/env bash
# Records one line per call: its arguments, then the PYTHONPATH it was given.
echo "$* | PYTHONPATH=$PYTHONPATH" >> "$ACCELERATE_LOG"
"""


def script_env(tmp_path, *path_first, **variables) -> dict:
    """The environment a user's shell would have: `python` and the given folders on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "NNODES", "NODE_RANK", "MASTER_ADDR", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join([*map(str, path_first), str(Path(sys.executable).parent), env["PATH"]])
    env["ACCELERATE_LOG"] = str(tmp_path / "accelerate.log")
    env["SRUN_LOG"] = str(tmp_path / "srun.log")
    env.update({k: str(v) for k, v in variables.items()})
    return env


@pytest.fixture
def fake_accelerate(tmp_path):
    """A folder holding the recording `accelerate` stub, to put first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    stub = folder / "accelerate"
    stub.write_text(ACCELERATE_STUB)
    stub.chmod(0o755)
    return folder


def run_script(name, args, env):
    return subprocess.run([str(LAUNCH / name), *map(str, args)], env=env, capture_output=True, text=True, timeout=120)


def accelerate_calls(tmp_path) -> list:
    log = tmp_path / "accelerate.log"
    return sorted(log.read_text().splitlines()) if log.exists() else []


def launch_line(processes, machines, rank, ip, port, module_and_args) -> str:
    return (
        f"launch --multi_gpu --num_processes {processes} --num_machines {machines} --machine_rank {rank} "
        f"--main_process_ip {ip} --main_process_port {port} -m {module_and_args} | PYTHONPATH={REPO}"
    )


@pytest.fixture
def recipe_with_port(tmp_path, tiny_data):
    return write_recipe(tmp_path / "ported.yaml", tiny_recipe_dict(*tiny_data, dist={"port": 29702}))


def test_dist_train_on_one_of_two_nodes(tmp_path, tiny_recipe, fake_accelerate):
    env = script_env(tmp_path, fake_accelerate, PORT=29704, NNODES=2, NODE_RANK=1, MASTER_ADDR="10.1.2.3")
    done = run_script("dist_train.sh", [tiny_recipe, 4, "train.epochs=3", "--work-dir", "w"], env)
    assert done.returncode == 0, done.stderr
    # GPUS is per machine, as in MMClassification; accelerate counts processes over all machines.
    assert accelerate_calls(tmp_path) == [
        launch_line(8, 2, 1, "10.1.2.3", 29704, f"hfcls.train {tiny_recipe} train.epochs=3 --work-dir w")
    ]


def test_dist_train_defaults_and_single_process(tmp_path, recipe_with_port, fake_accelerate):
    env = script_env(tmp_path, fake_accelerate)
    assert run_script("dist_train.sh", [recipe_with_port, 2], env).returncode == 0
    assert run_script("dist_train.sh", [recipe_with_port, 1], env).returncode == 0
    assert accelerate_calls(tmp_path) == [
        launch_line(2, 1, 0, "127.0.0.1", 29702, f"hfcls.train {recipe_with_port}"),
        f"launch --num_processes 1 --num_machines 1 -m hfcls.train {recipe_with_port} | PYTHONPATH={REPO}",
    ]


def test_dist_test_runs_hfcls_cli_eval(tmp_path, tiny_recipe, fake_accelerate):
    env = script_env(tmp_path, fake_accelerate, PORT=29705)
    done = run_script("dist_test.sh", [tiny_recipe, "work/best", 2, "--metrics", "accuracy", "--out", "r.json"], env)
    assert done.returncode == 0, done.stderr
    assert accelerate_calls(tmp_path) == [
        launch_line(
            2, 1, 0, "127.0.0.1", 29705, f"hfcls.cli.eval {tiny_recipe} work/best --metrics accuracy --out r.json"
        )
    ]


def test_taken_port_is_one_line_before_anything_starts(tmp_path, tiny_recipe, fake_accelerate):
    with socket.socket() as busy:
        busy.bind(("", 29706))
        busy.listen()
        done = run_script("dist_train.sh", [tiny_recipe, 2], script_env(tmp_path, fake_accelerate, PORT=29706))
        assert done.returncode == 2
        assert done.stderr.splitlines() == [
            f"error: port 29706 is already in use on {socket.gethostname()} (another job?); "
            "pick a free one with PORT=29707 (or the recipe's dist.port)"
        ]
        assert accelerate_calls(tmp_path) == []
        # Machines other than 0 connect to the port, they do not listen on it.
        env = script_env(tmp_path, fake_accelerate, PORT=29706, NNODES=2, NODE_RANK=1)
        assert run_script("dist_train.sh", [tiny_recipe, 2], env).returncode == 0
        with pytest.raises(HfclsError, match="port 29706 is already in use"):
            check_port_free(29706)
    check_port_free(29706)


def test_bad_port_and_missing_arguments_are_one_line(tmp_path, tiny_recipe, fake_accelerate):
    done = run_script("dist_train.sh", [tiny_recipe, 2], script_env(tmp_path, fake_accelerate, PORT="29x"))
    assert (done.returncode, done.stderr) == (
        2,
        "error: PORT='29x' is not a port number; use one from 1 to 65535, e.g. 29501\n",
    )
    done = run_script("slurm_train.sh", ["gpu", "job"], script_env(tmp_path, fake_accelerate))
    assert (done.returncode, done.stderr) == (
        2,
        "usage: launch/slurm_train.sh PARTITION JOB_NAME RECIPE WORK_DIR [train args...]\n",
    )


def test_slurm_train_runs_one_task_per_node(tmp_path, recipe_with_port, fake_accelerate):
    env = script_env(
        tmp_path,
        fake_accelerate,
        SLURM_STUB,
        GPUS=4,
        GPUS_PER_NODE=2,
        CPUS_PER_TASK=3,
        SRUN_ARGS="--quotatype=auto --time=1:00:00",
        STUB_HOSTS="node-a,node-b",
    )
    done = run_script("slurm_train.sh", ["gpu", "job1", recipe_with_port, "work", "--seed", 3], env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "srun.log").read_text() == (
        "--partition=gpu --job-name=job1 --nodes=2 --ntasks=2 --ntasks-per-node=1 --gres=gpu:2 "
        f"--cpus-per-task=6 --kill-on-bad-exit=1 --quotatype=auto --time=1:00:00 {LAUNCH}/slurm_node.sh "
        f"hfcls.train {recipe_with_port} --work-dir work --seed 3\n"
    )
    module = f"hfcls.train {recipe_with_port} --work-dir work --seed 3"
    assert accelerate_calls(tmp_path) == [launch_line(4, 2, rank, "node-a", 29702, module) for rank in (0, 1)]


def test_slurm_test_takes_port_from_env_and_defaults_to_one_node_of_8(tmp_path, tiny_recipe, fake_accelerate):
    env = script_env(tmp_path, fake_accelerate, SLURM_STUB, PORT=29708)
    done = run_script("slurm_test.sh", ["gpu", "eval", tiny_recipe, "work/best", "--out", "r.json"], env)
    assert done.returncode == 0, done.stderr
    assert (
        "--nodes=1 --ntasks=1 --ntasks-per-node=1 --gres=gpu:8 --cpus-per-task=40"
        in (tmp_path / "srun.log").read_text()
    )
    assert accelerate_calls(tmp_path) == [
        launch_line(8, 1, 0, "localhost", 29708, f"hfcls.cli.eval {tiny_recipe} work/best --out r.json")
    ]


def test_slurm_rejects_gpus_that_do_not_fill_nodes(tmp_path, tiny_recipe, fake_accelerate):
    env = script_env(tmp_path, fake_accelerate, SLURM_STUB, GPUS=6, GPUS_PER_NODE=4)
    done = run_script("slurm_train.sh", ["gpu", "job", tiny_recipe, "work"], env)
    assert (done.returncode, done.stderr) == (
        2,
        "error: GPUS=6 is not a multiple of GPUS_PER_NODE=4; every node runs GPUS_PER_NODE processes\n",
    )
    assert not (tmp_path / "srun.log").exists()


def test_accelerate_config_files_load_as_documented():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {  # file: (distributed_type, num_machines, num_processes)
        "one_gpu.yaml": ("NO", 1, 1),
        "one_node.yaml": ("MULTI_GPU", 1, 8),
        "multi_node.yaml": ("MULTI_GPU", 2, 16),
        "fsdp.yaml": ("FSDP", 1, 8),
        "deepspeed_zero2.yaml": ("DEEPSPEED", 1, 8),
        "cpu_processes.yaml": ("MULTI_GPU", 1, 2),
    }
    assert sorted(p.name for p in (LAUNCH / "accelerate").glob("*.yaml")) == sorted(expected)
    for name, (kind, machines, processes) in expected.items():
        config = load_config_from_file(str(LAUNCH / "accelerate" / name))
        assert (config.distributed_type, config.num_machines, config.num_processes) == (kind, machines, processes), name
    assert load_config_from_file(str(LAUNCH / "accelerate" / "fsdp.yaml")).fsdp_config["fsdp_version"] == 2
    assert (
        load_config_from_file(str(LAUNCH / "accelerate" / "deepspeed_zero2.yaml")).deepspeed_config["zero_stage"] == 2
    )


@pytest.mark.parametrize("launcher", [[], ["-m", "accelerate.commands.launch", "--num_processes", "1"]])
def test_script_runs_under_python_and_accelerate_launch(tiny_recipe, tmp_path, launcher):
    work = tmp_path / "w"
    cmd = [
        sys.executable,
        *launcher,
        str(REPO / "hfcls" / "train.py"),
        str(tiny_recipe),
        "train.epochs=1",
        "--work-dir",
        str(work),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert (work / "best" / "model.safetensors").is_file()
    assert yaml.safe_load((work / "recipe.yaml").read_text())["train"]["epochs"] == 1
