"""Real multi-process runs on CPU (gloo over loopback): one job, several processes.

Each test starts `accelerate launch` (through the launch/ scripts or directly)
and checks what a user would: one set of files, the numbers of a single
process, a job that ends when one of its processes is lost.
"""

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image
from transformers import AutoModelForImageClassification

from hfcls.artifacts.checkpoint import read_state
from hfcls.data.build import build_datasets, build_eval_loader
from hfcls.engine.setup import accelerator_session
from hfcls.engine.validation import validation_metrics
from hfcls.logs import read_jsonl
from hfcls.predict.forward import predict
from hfcls.predict.inputs import recipe_inputs
from hfcls.recipe import load_recipe

from commands import launch_env, run_two_processes
from conftest import (
    ALL_METRICS,
    REPO,
    deterministic_rows,
    make_image_folder,
    max_difference,
    tiny_recipe_dict,
    weights,
    write_recipe,
)
from layouts import isolated_cache, save_numbered  # noqa: F401

pytestmark = pytest.mark.slow

LAUNCH = REPO / "launch"
SLURM_STUB = REPO / "tests" / "slurm_stub"
LOST = "another process of this job died or stopped answering"


def two_node_launch(rank: int, port: int, *module_and_args) -> list:
    """`accelerate launch` for one of two simulated machines, one process each."""
    return [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "2",
        "--machine_rank",
        str(rank),
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(port),
        "-m",
        *map(str, module_and_args),
    ]


def start(cmd, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(c) for c in cmd], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(processes, logs, timeout=600):
    for process, log in zip(processes, logs):
        assert process.wait(timeout=timeout) == 0, log.read_text()[-4000:]


def tiny_recipe_file(tmp_path, tiny_data, **sections) -> Path:
    return write_recipe(tmp_path / "tiny.yaml", tiny_recipe_dict(*tiny_data, **sections))


def evaluate_alone(folder: Path, recipe) -> dict:
    """Metrics of an exported model on the val split, in this one process."""
    val = build_datasets(recipe.data, recipe.seed, ("val",))["val"]
    with accelerator_session(recipe) as accelerator:
        # Another batch size than the run's: the numbers must not depend on batching or sharding.
        loader = build_eval_loader(recipe.data, val, accelerator, recipe.seed, batch_size=50)
        model = accelerator.prepare(AutoModelForImageClassification.from_pretrained(folder))
        predictions = predict(model, loader, recipe_inputs(recipe, accelerator.device), accelerator=accelerator)
    return validation_metrics(predictions, recipe.evaluation.topk)


def test_two_processes_train_digits_as_one_job(digits_dir, tmp_path, warm_bin):
    work = tmp_path / "work"
    cmd = [
        "accelerate",
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "29720",
        REPO / "hfcls" / "train.py",
        REPO / "recipes" / "digits" / "resnet-tiny_1xb64_digits.yaml",
        f"data.train.path={digits_dir / 'train'}",
        f"data.val.path={digits_dir / 'val'}",
        "data.num_workers=0",
        "train.epochs=2",
        "evaluation.interval=1",
        "checkpoint.interval=1",
        "--work-dir",
        work,
    ]
    done = subprocess.run(
        [str(c) for c in cmd], env=launch_env(warm=warm_bin), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # One job: rank 0 alone prints and writes; the log states the total batch.
    log = (work / "log.txt").read_text()
    assert len(re.findall(r"1437 train / 360 val images, 10 classes; batch 64 x 2 processes.* = 128;", log)) == 1
    assert done.stdout.count("steps per epoch") == 1
    assert log.count("epoch 1:") == log.count("epoch 2:") == 1
    rows = read_jsonl(work / "metrics.jsonl")
    assert [row["epoch"] for row in rows] == [1, 2]
    assert rows[-1]["step"] == 2 * 11  # 1437 images // 64 = 22 batches, 11 per process
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["epoch_1", "epoch_2"]
    # One writer: the scalars' event file, and the recipe as hyperparameters in a folder of its own.
    events = list((work / "tensorboard").rglob("events.out.tfevents*"))
    assert len(list((work / "tensorboard" / "hfcls").glob("events.out.tfevents*"))) == 1
    assert len({event.name.split(".")[-2] for event in events}) == 1  # ...<host>.<pid>.<n>: one process

    # gather_for_metrics counts each val image once: the numbers of one process.
    alone = evaluate_alone(work / "latest", load_recipe(work / "recipe.yaml"))
    assert alone["accuracy_top1"] == pytest.approx(rows[-1]["val_accuracy_top1"], abs=1e-4)
    assert alone["accuracy_top5"] == pytest.approx(rows[-1]["val_accuracy_top5"], abs=1e-4)
    assert alone["loss"] == pytest.approx(rows[-1]["val_loss"], rel=1e-4)
    assert alone["accuracy_top1"] > 30  # learned something: chance is 10 %


def test_two_simulated_two_node_jobs_side_by_side(tmp_path, tiny_data, warm_bin):
    """dist_train.sh with NNODES=2 and plain `accelerate launch --num_machines 2`,
    both at once on one machine, each on its own port."""
    recipe = tiny_recipe_file(tmp_path, tiny_data, train={"epochs": 2})
    script, direct = tmp_path / "script", tmp_path / "direct"
    logs = [tmp_path / f"{job}{rank}.log" for job in ("script", "direct") for rank in (0, 1)]
    processes = [
        *(
            start(
                [LAUNCH / "dist_train.sh", recipe, 1, "--work-dir", script],
                launch_env(warm=warm_bin, PORT=29721, NNODES=2, NODE_RANK=rank, MASTER_ADDR="127.0.0.1"),
                logs[rank],
            )
            for rank in (0, 1)
        ),
        *(
            start(
                two_node_launch(rank, 29722, "hfcls.train", recipe, "--work-dir", direct),
                launch_env(warm=warm_bin),
                logs[2 + rank],
            )
            for rank in (0, 1)
        ),
    ]
    # Both rendezvous (each job's store, held from start to end) listen at once.
    assert listening_together({29721, 29722}, processes)
    finish(processes, logs)

    for work in (script, direct):
        assert "batch 8 x 2 processes" in (work / "log.txt").read_text()
        assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["epoch_1", "epoch_2"]
    # Same recipe, same seed, same two processes: the same numbers.
    keys = ("step", "loss", "val_loss", "val_accuracy_top1")
    assert [[row[k] for k in keys] for row in read_jsonl(script / "metrics.jsonl")] == [
        [row[k] for k in keys] for row in read_jsonl(direct / "metrics.jsonl")
    ]


def listening_together(ports: set, processes, limit_s=300) -> bool:
    start_time = time.monotonic()
    while time.monotonic() - start_time < limit_s and all(p.poll() is None for p in processes):
        listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
        if ports <= listening:
            return True
        time.sleep(0.2)
    return False


def test_slurm_train_runs_through_srun(tmp_path, tiny_data, warm_bin):
    """Through the srun/scontrol stand-ins (no Slurm here), which run each node's
    command for real: two nodes of one process each."""
    recipe = tiny_recipe_file(tmp_path, tiny_data, train={"epochs": 2}, dist={"port": 29723})
    work, srun_log = tmp_path / "work", tmp_path / "srun.log"
    env = launch_env(SLURM_STUB, warm=warm_bin, GPUS=2, GPUS_PER_NODE=1, SRUN_LOG=srun_log)
    done = subprocess.run(
        [str(LAUNCH / "slurm_train.sh"), "cpu", "tiny", str(recipe), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "--nodes=2 --ntasks=2 --ntasks-per-node=1 --gres=gpu:1" in srun_log.read_text()
    assert "batch 8 x 2 processes x 1 accumulation = 16" in (work / "log.txt").read_text()
    assert [row["epoch"] for row in read_jsonl(work / "metrics.jsonl")] == [1, 2]


@pytest.mark.parametrize("lose", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "frozen"])
def test_lost_process_ends_the_job_within_the_timeout(tmp_path, tiny_data, lose):
    """Rank 1 runs on the second simulated machine, so rank 0's launcher cannot see
    it go: rank 0 must notice through its collectives. A killed process closes its
    connections (noticed at once); a frozen one does not (noticed at the timeout)."""
    timeout_s = 20  # long enough for a busy CI machine to start both processes
    recipe = tiny_recipe_file(
        tmp_path,
        tiny_data,
        train={"epochs": 1000},
        evaluation={"interval": 1000},
        checkpoint={"interval": 1000},
        dist={"timeout_minutes": timeout_s / 60},
    )
    work = tmp_path / "work"
    logs = [tmp_path / f"node{rank}.log" for rank in (0, 1)]
    port = 29724 + (lose == signal.SIGSTOP)
    launchers = [
        start(two_node_launch(rank, port, "hfcls.train", recipe, "--work-dir", work), launch_env(), log)
        for rank, log in zip((0, 1), logs)
    ]
    try:
        wait_until_training(work, launchers)
        victim = worker_of(launchers[1], rank=1)
        victim.send_signal(lose)
        lost_at = time.monotonic()
        assert launchers[0].wait(timeout=timeout_s + 60) != 0
        noticed_after = time.monotonic() - lost_at
        if lose == signal.SIGSTOP:
            assert noticed_after > timeout_s - 1  # waited for the timeout...
            victim.send_signal(signal.SIGCONT)
        assert noticed_after < timeout_s + 30  # ...and not for ever
        assert f"rank 0: {LOST}" in (work / "log.txt").read_text()
        assert launchers[1].wait(timeout=120) != 0
    finally:
        for launcher in launchers:
            stop_tree(launcher)


def wait_until_training(work: Path, launchers, limit_s=300):
    start_time = time.monotonic()
    while time.monotonic() - start_time < limit_s:
        if (work / "log.txt").exists() and "steps per epoch" in (work / "log.txt").read_text():
            time.sleep(2)
            return
        assert all(p.poll() is None for p in launchers), "a launcher ended before training started"
        time.sleep(0.5)
    raise AssertionError(f"training did not start within {limit_s} s")


def worker_of(launcher: subprocess.Popen, rank: int) -> psutil.Process:
    """The training process of `rank` that `launcher` started."""
    workers = [
        p
        for p in psutil.Process(launcher.pid).children(recursive=True)
        if p.environ().get("RANK") == str(rank) and "hfcls.train" in " ".join(p.cmdline())
    ]
    assert len(workers) == 1, workers
    return workers[0]


def stop_tree(launcher: subprocess.Popen):
    """Leave nothing behind, even when an assertion failed half-way."""
    if launcher.poll() is not None:
        return
    for process in psutil.Process(launcher.pid).children(recursive=True) + [psutil.Process(launcher.pid)]:
        process.kill()
    launcher.wait(timeout=60)


def test_dist_test_evaluates_each_image_once_on_two_processes(tmp_path, tiny_data, warm_bin):
    from hfcls.api import train

    recipe = tiny_recipe_file(tmp_path, tiny_data, dist={"port": 29726})
    train(load_recipe(recipe), tmp_path / "work")  # one process
    out = tmp_path / "results.json"
    cmd = [LAUNCH / "dist_test.sh", recipe, tmp_path / "work" / "best", 2, "--metrics", "accuracy", "--out", out]
    done = subprocess.run(
        [str(c) for c in cmd], env=launch_env(warm=warm_bin), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["metrics"] and len(results["predictions"]) == 12  # 12 val images, none twice


def train_on_two_cpu_processes(warm_bin: Path, port: int, recipe, *args) -> None:
    """hfcls-train RECIPE ARGS on two gloo processes of this machine."""
    # Without a GPU, Accelerate runs a --multi_gpu launch as MULTI_CPU only when told to use the CPU.
    run_two_processes(warm_bin, "hfcls.cli.train", recipe, *args, port=port, ACCELERATE_USE_CPU=1)


def test_two_process_mid_epoch_resume_is_exact(tmp_path, warm_bin):
    """Two CPU processes (gloo): sharded data, collective saves, the same exactness as one."""
    folders = (make_image_folder(tmp_path / "train", per_class=16), make_image_folder(tmp_path / "val", per_class=4))
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe_dict(*folders, train={"epochs": 2, "deterministic": True}, checkpoint={"interval_steps": 2}),
    )
    train_on_two_cpu_processes(warm_bin, 29621, recipe, "--work-dir", tmp_path / "straight")
    state = read_state(tmp_path / "straight" / "checkpoints" / "step_2")
    assert (state.epoch, state.batch_in_epoch) == (0, 2)  # 48 images / (8 x 2 processes) = 3 steps an epoch
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step_2", tmp_path / "stopped" / "checkpoints" / "step_2")
    train_on_two_cpu_processes(warm_bin, 29621, recipe, "--work-dir", tmp_path / "stopped", "--resume")
    assert max_difference(weights(tmp_path / "straight", "epoch_2"), weights(tmp_path / "stopped", "epoch_2")) == 0
    assert deterministic_rows(tmp_path / "stopped") == deterministic_rows(tmp_path / "straight")


def test_two_processes_decoding_on_the_device_train_as_the_workers_do(tmp_path, warm_bin):
    """data.decode=cpu on two gloo processes: the same shards, augmentations, mixing and evaluation
    (gather_for_metrics over uneven eval batches) as the worker loader, so the same weights and metrics."""
    folders = (make_image_folder(tmp_path / "train", per_class=16), make_image_folder(tmp_path / "val", per_class=4))
    for png in list((tmp_path / "train").glob("*/*[02468].png")):  # half the files JPEGs: one batched decode
        Image.open(png).save(png.with_suffix(".jpg"), quality=90)
        png.unlink()
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe_dict(
            *folders, data={"eval_batch_size": 5}, train={"epochs": 2, "deterministic": True, "mixup_alpha": 0.2}
        ),
    )
    for decode in ("workers", "cpu"):
        train_on_two_cpu_processes(warm_bin, 29622, recipe, "--work-dir", tmp_path / decode, f"data.decode={decode}")
    assert "decode: cpu" in (tmp_path / "cpu" / "recipe.yaml").read_text()
    assert max_difference(weights(tmp_path / "workers", "epoch_2"), weights(tmp_path / "cpu", "epoch_2")) == 0
    rows = deterministic_rows(tmp_path / "cpu")
    assert rows == deterministic_rows(tmp_path / "workers") and [row["step"] for row in rows] == [3, 6]
    assert all("val_accuracy_top1" in row for row in rows)


def test_two_processes_train_from_one_stream(tmp_path, warm_bin):
    """Two gloo processes (ACCELERATE_USE_CPU makes a GPU-less launch MULTI_CPU), each on its part."""
    save_numbered(tmp_path / "saved", count=24, shards=4)
    val = make_image_folder(tmp_path / "val", per_class=2)
    train_spec = {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True}
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe_dict(
            None, val, data={"train": train_spec, "steps_per_epoch": 3, "batch_size": 4}, train={"epochs": 2}
        ),
    )
    env = launch_env(warm=warm_bin, ACCELERATE_USE_CPU=1)
    launch = [
        str(warm_bin / "python"),
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "29517",
        str(REPO / "hfcls" / "train.py"),
        str(recipe),
        "--work-dir",
        str(tmp_path / "work"),
    ]
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "batch 4 x 2 processes x 1 accumulation = 8; 3 steps per epoch" in done.stdout + done.stderr
    rows = [json.loads(line) for line in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [3, 6]


def test_two_processes_evaluate_every_sample_once(trained_digits, best_results, tmp_path, warm_bin):
    """360 val images, batch 16, 2 processes: the last round is uneven and padded by Accelerate. knn and
    retrieval search the 1437 training images, each process its half: the numbers of one process."""
    from hfcls.evaluation.checkpoint import evaluate_checkpoint
    from hfcls.evaluation.request import EvalRequest

    recipe, work = trained_digits
    neighbours = ["knn", "retrieval"]
    alone = evaluate_checkpoint(
        EvalRequest(load_recipe(recipe), work / "best", metrics=neighbours, metric_options={"topk": [1, 3], "k": 7})
    ).metrics
    out = tmp_path / "two.json"
    run = run_two_processes(
        warm_bin,
        "hfcls.cli.eval",
        recipe,
        work / "best",
        "--metrics",
        *ALL_METRICS,
        *neighbours,
        "--metric-options",
        "topk=1,3",
        "k=7",
        "--out",
        out,
        "--out-items",
        "metrics",
        "pred",
        "class_scores",
        cwd=tmp_path,
        CUDA_VISIBLE_DEVICES="",
    )
    assert "on 360 val images (10 classes) with 2 process(es)" in run.stdout
    results = json.loads(out.read_text())
    assert {key: results["metrics"].pop(key) for key in alone} == pytest.approx(alone, abs=1e-9)
    assert results["metrics"] == best_results["metrics"]
    assert len(results["predictions"]) == len(best_results["predictions"]) == 360
    assert [r["gt_label"] for r in results["predictions"]] == [r["gt_label"] for r in best_results["predictions"]]
    np.testing.assert_allclose(
        [r["class_scores"] for r in results["predictions"]],
        [r["class_scores"] for r in best_results["predictions"]],
        atol=1e-5,
    )


def test_tta_and_features_on_two_processes_equal_one(tmp_path, tiny_data, warm_bin):
    """Every image's TTA scores and features once, as one process computes them."""
    from hfcls.api import train
    from hfcls.evaluation.checkpoint import evaluate_checkpoint
    from hfcls.evaluation.request import EvalRequest

    recipe = tiny_recipe_file(tmp_path, tiny_data, dist={"port": 29727})
    train(load_recipe(recipe), tmp_path / "work")
    items = ["pred", "class_scores", "features"]
    evaluate_checkpoint(
        EvalRequest(
            load_recipe(recipe),
            tmp_path / "work" / "best",
            out=tmp_path / "one.json",
            tta="flip,crops",
            out_items=items,
        )
    )
    cmd = [
        LAUNCH / "dist_test.sh",
        recipe,
        tmp_path / "work" / "best",
        2,
        "--tta",
        "flip,crops",
        "--out",
        tmp_path / "two.json",
        "--out-items",
        *items,
    ]
    done = subprocess.run(
        [str(c) for c in cmd], env=launch_env(warm=warm_bin), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    one, two = (json.loads((tmp_path / name).read_text())["predictions"] for name in ("one.json", "two.json"))
    assert len(two) == len(one) == 12
    for a, b in zip(one, two):
        assert a["gt_label"] == b["gt_label"] and a["image"] == b["image"]
        assert (
            max(abs(x - y) for x, y in zip(a["class_scores"] + a["features"], b["class_scores"] + b["features"])) < 1e-5
        )
