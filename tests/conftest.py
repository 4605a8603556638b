"""Shared fixtures: tiny generated image folders and recipes, all offline."""

import gc
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
# One torch thread per test process (xdist runs two): runs that tests compare then round alike
# whatever else runs, instead of hfcls.engine.threads fitting each to the cores free at its start.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# Colours the tiny classes are drawn around: learnable in one epoch.
CLASS_COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}


def make_image_folder(root: Path, per_class: int = 8, size: int = 16, seed: int = 0, classes=CLASS_COLOURS) -> Path:
    """root/<class>/<i>.png: noisy images around a class colour."""
    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-40, 40, size=(size, size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


# Three digit classes, named: their 8 x 8 images upscale alike in Pillow and in torchvision (bilinear), so a
# transformers.pipeline that resizes with Pillow (timm's processor) sees hfcls's pixels exactly.
DIGIT_CLASSES = {"zero": 0, "one": 1, "seven": 7}


def make_digit_folder(root: Path, per_class: int, offset: int = 0, classes=DIGIT_CLASSES) -> Path:
    """root/<name>/<i>.png: scikit-learn's 8 x 8 digits of `classes`, from the `offset`-th of each, grey PNGs."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for name, digit in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(digits.target == digit)[offset : offset + per_class]:
            pixels = (digits.images[i] * 16).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(root / name / f"{i}.png")
    return root


def make_multilabel_folder(root: Path, count: int = 24, size: int = 15, seed: int = 0, classes=CLASS_COLOURS) -> list:
    """root/images/<i>.png + root/metadata.jsonl: the thirds of each image painted in 1 or 2 of the class
    colours (its labels), the rest black. Returns each image's label names."""
    rng = np.random.default_rng(seed)
    names = list(classes)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows, labels = [], []
    for i in range(count):
        shown = sorted(rng.choice(len(names), size=rng.integers(1, 3), replace=False).tolist())
        thirds = rng.choice(3, size=len(shown), replace=False)
        pixels = rng.integers(0, 30, size=(size, size, 3))
        for c, third in zip(shown, thirds):
            width = size // 3
            pixels[:, third * width : (third + 1) * width] = np.array(classes[names[c]]) + rng.integers(-30, 30, size=3)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / "images" / f"{i}.png")
        labels.append([names[c] for c in shown])
        rows.append(json.dumps({"file_name": f"images/{i}.png", "labels": labels[-1]}))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return labels


@pytest.fixture
def multilabel_data(tmp_path):
    """(train_dir, val_dir): images showing 1-2 of 3 colours, 24 + 12 of them, with a metadata.jsonl each."""
    train, val = tmp_path / "ml" / "train", tmp_path / "ml" / "val"
    make_multilabel_folder(train, count=24, seed=0)
    make_multilabel_folder(val, count=12, seed=1)
    return train, val


def tiny_recipe_dict(train_dir, val_dir, **sections) -> dict:
    """A complete recipe for a ~10k-parameter ResNet on 16x16 images. It publishes and logs to TensorBoard
    only where a test asks (train.publish, train.log_with): most tests read neither, and both take time."""
    recipe = {
        "data": {
            "train": {"type": "imagefolder", "path": str(train_dir)},
            "val": {"type": "imagefolder", "path": str(val_dir)},
            "batch_size": 8,
            "num_workers": 0,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
            "train_pipeline": [
                {"type": "RandomResizedCrop", "size": 16, "scale": [0.5, 1.0]},
                {"type": "RandomHorizontalFlip"},
            ],
            "eval_pipeline": [{"type": "Resize", "size": 16}, {"type": "CenterCrop", "size": 16}],
        },
        "model": {
            "config": {
                "model_type": "resnet",
                "embedding_size": 8,
                "hidden_sizes": [8, 16],
                "depths": [1, 1],
                "layer_type": "basic",
            }
        },
        "optim": {"type": "adamw", "lr": 0.01, "weight_decay": 0.0},
        "schedule": {"type": "constant"},
        "train": {"epochs": 1, "log_interval": 2, "publish": False, "log_with": []},
        "evaluation": {"topk": [1, 2]},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    return recipe


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def make_tiny_data(root: Path) -> tuple:
    """(train_dir, val_dir) under root/data: 3 classes, 8 + 4 images each, 16x16 RGB PNG."""
    return (
        make_image_folder(root / "data" / "train", per_class=8, seed=0),
        make_image_folder(root / "data" / "val", per_class=4, seed=1),
    )


@pytest.fixture
def tiny_data(tmp_path):
    """(train_dir, val_dir): make_tiny_data in this test's folder."""
    return make_tiny_data(tmp_path)


@pytest.fixture
def tiny_recipe(tmp_path, tiny_data):
    """Path of a 1-epoch recipe on `tiny_data`."""
    return write_recipe(tmp_path / "tiny.yaml", tiny_recipe_dict(*tiny_data))


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """scikit-learn's digits prepared as the demo's image folder (train/val)."""
    from hfcls.data.prepare import prepare_digits

    root = tmp_path_factory.mktemp("digits")
    prepare_digits(root)
    return root


def shared_once(tmp_path_factory, name: str, build) -> Path:
    """A folder `build(folder)` fills once per test run, shared by the pytest-xdist workers
    through their common temporary folder under a file lock. Tests must not change it."""
    from filelock import FileLock

    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    root = (tmp_path_factory.getbasetemp().parent if shared else tmp_path_factory.getbasetemp()) / name
    root.mkdir(exist_ok=True)
    with FileLock(str(root / "lock")):
        if not (root / "done").is_file():
            build(root)
            (root / "done").touch()
    return root


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory, digits_dir):
    """(recipe path, work dir) of a tiny ResNet trained 1 epoch on digits at 16x16 (~90 % val accuracy).

    Trained once per test run (`shared_once`). The 360 val images with eval batch 16 do
    not divide into 2 x 16, as the multi-process evaluation test needs.
    """

    def build(root):
        from hfcls.api import train
        from hfcls.recipe import load_recipe

        resize = [{"type": "Resize", "size": 16}]
        write_recipe(
            root / "digits.yaml",
            tiny_recipe_dict(
                digits_dir / "train",
                digits_dir / "val",
                data={"batch_size": 32, "eval_batch_size": 16, "train_pipeline": resize, "eval_pipeline": resize},
                train={"epochs": 1, "log_interval": 50},
            ),
        )
        train(load_recipe(root / "digits.yaml"), root / "work")

    root = shared_once(tmp_path_factory, "trained_digits", build)
    return root / "digits.yaml", root / "work"


@pytest.fixture(scope="session")
def digits_int8(tmp_path_factory, trained_digits):
    """(recipe path, int8 .onnx, what hfcls-export printed): `hfcls-export best/ digits-int8.onnx --quantize int8`
    of the digits run, checked on all 360 validation images, shared."""

    def build(root):
        import io
        from contextlib import redirect_stdout

        from hfcls.cli.export import main

        printed = io.StringIO()
        with redirect_stdout(printed):
            main(
                [str(trained_digits[1] / "best"), str(root / "digits-int8.onnx"), "--quantize", "int8"]
                + ["--limit", "360", "--dynamic-batch"]
            )
        (root / "printed.txt").write_text(printed.getvalue())

    root = shared_once(tmp_path_factory, "digits_int8", build)
    return trained_digits[0], root / "digits-int8.onnx", (root / "printed.txt").read_text()


@pytest.fixture(scope="session")
def multilabel_run(tmp_path_factory):
    """(recipe path, work dir) of a finished 2-epoch multi-label run on the tiny colour thirds, shared."""

    def build(root):
        from hfcls.api import train
        from hfcls.recipe import load_recipe

        make_multilabel_folder(root / "data" / "train", count=24, seed=0)
        make_multilabel_folder(root / "data" / "val", count=12, seed=1)
        write_recipe(
            root / "multilabel.yaml",
            tiny_recipe_dict(root / "data" / "train", root / "data" / "val", train={"epochs": 2}),
        )
        train(load_recipe(root / "multilabel.yaml"), root / "work")

    root = shared_once(tmp_path_factory, "multilabel_run", build)
    return root / "multilabel.yaml", root / "work"


@pytest.fixture(scope="session")
def multilabel_digits_dir(tmp_path_factory):
    """hfcls-prepare's multi-label digits (canvases of 2-3 digits, a metadata.jsonl per split), shared."""
    from hfcls.data.prepare import prepare_multilabel_digits

    return shared_once(tmp_path_factory, "multilabel_digits", prepare_multilabel_digits)


@pytest.fixture(scope="session")
def trained_multilabel_digits(tmp_path_factory, multilabel_digits_dir):
    """(recipe path, work dir) of recipes/multilabel_digits' recipe trained 5 epochs (mAP ~85 %), shared.

    Eval batch 16: the 360 val canvases do not divide into 2 x 16, as the two-process test needs.
    """

    def build(root):
        from hfcls.api import train
        from hfcls.recipe import load_recipe, save_recipe

        recipe = load_recipe(
            REPO / "recipes" / "multilabel_digits" / "resnet-tiny_1xb64_multilabel-digits.yaml",
            [
                f"data.train.path={multilabel_digits_dir / 'train'}",
                f"data.val.path={multilabel_digits_dir / 'val'}",
                "data.eval_batch_size=16",
                "train.epochs=5",
                "train.log_with=[]",
            ],
        )
        save_recipe(recipe, root / "multilabel.yaml")
        train(recipe, root / "work")

    root = shared_once(tmp_path_factory, "trained_multilabel_digits", build)
    return root / "multilabel.yaml", root / "work"


@pytest.fixture
def command(capsys, monkeypatch):
    """command(script, *args, cwd=None): a console script's main(args) in this process, as a
    CompletedProcess (commands.ok and commands.user_error read it as they read a subprocess)."""
    from commands import run_in_process

    monkeypatch.setattr(sys, "path", list(sys.path))  # custom_imports appends the working folder

    def call(script, *args, cwd=None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        return run_in_process(script, args, capsys)

    return call


@pytest.fixture(scope="session")
def warm_bin():
    """A folder to put first on PATH: `python`, `accelerate` and hfcls's console scripts, each command a
    process of its own forked from one interpreter that has imported torch and transformers
    (tests/warm_commands.py). For tests that start many commands; not for tests that signal them."""
    from commands import console_scripts
    from warm_commands import warm_commands

    scripts = {**console_scripts(), "accelerate": "accelerate.commands.accelerate_cli"}
    with warm_commands(dict(os.environ), scripts) as folder:
        yield folder


@contextmanager
def built_run(recipe, work_dir: Path, **kwargs):
    """The Run that training builds (hfcls.engine.setup.build_run) on its own Accelerator, for
    tests that watch the model (forward hooks) or drive the loop's parts themselves."""
    from hfcls.engine.setup import accelerator_session, build_run

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with accelerator_session(recipe, work_dir) as accelerator:
        yield build_run(recipe, work_dir, accelerator, **kwargs)


def fresh_state(run):
    """The TrainState a new run starts from."""
    from hfcls.artifacts.checkpoint import TrainState
    from hfcls.artifacts.resume import recipe_fingerprint

    return TrainState(
        recipe=recipe_fingerprint(
            run.recipe, len(run.class_names), run.accelerator.num_processes, run.total_steps // run.recipe.train.epochs
        )
    )


def benchmark_data():
    """benchmarks/make_data.py, the generators of the benchmark data sets, as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_data", REPO / "benchmarks" / "make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- finished runs, shared


# A ViT of ~3,400 parameters on 16 x 16 images (its position embeddings fix that size): attention for
# LoRA's defaults; LayerNorm only, no BatchNorm (whose statistics would be per process), so the loss of a
# batch is the mean of its samples' losses.
TINY_VIT = {
    "model_type": "vit",
    "image_size": 16,
    "patch_size": 4,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
}

# The CIFAR ResNet, named by model_type in a recipe like any transformers architecture.
TINY_CIFAR_RESNET = {"model_type": "cifar_resnet", "stem_channels": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}


@pytest.fixture(scope="session")
def cifar_resnet_run(tmp_path_factory):
    """Work dir of a finished 1-epoch run of hfcls's own tiny CIFAR ResNet on the tiny colours (named tiny_run)."""

    def build(root):
        from hfcls.api import train
        from hfcls.recipe import recipe_from_dict

        train_dir, val_dir = make_tiny_data(root)
        train(
            recipe_from_dict(
                tiny_recipe_dict(train_dir, val_dir, model={"config": TINY_CIFAR_RESNET}, train={"publish": True})
            ),
            root / "tiny_run",
        )

    return shared_once(tmp_path_factory, "cifar_resnet_run", build) / "tiny_run"


@pytest.fixture(scope="session")
def two_epoch_run(tmp_path_factory):
    """Work dir of a finished 2-epoch run of the tiny ResNet (evaluated after each epoch, published, logged
    to TensorBoard). Beside it: its recipe file, tiny.yaml, and what train() returned, returned.json."""

    def build(root):
        from hfcls.api import train
        from hfcls.recipe import load_recipe

        train_dir, val_dir = make_tiny_data(root)
        recipe = write_recipe(
            root / "tiny.yaml",
            tiny_recipe_dict(train_dir, val_dir, train={"epochs": 2, "publish": True, "log_with": ["tensorboard"]}),
        )
        (root / "returned.json").write_text(json.dumps(train(load_recipe(recipe), root / "run")))

    return shared_once(tmp_path_factory, "two_epoch_run", build) / "run"


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory):
    """(recipe path, work dir) of 2 epochs of LoRA on a tiny ViT with an EMA that lags, checkpoint and evaluation
    each epoch, published; its data in data/ beside the work dir. Shared (tests/e2e/test_lora_run.py and the
    hostile LoRA files of tests/cli/test_cli_entry_crossings.py)."""

    def build(root):
        from hfcls.api import train
        from hfcls.recipe import load_recipe

        data = make_tiny_data(root)
        recipe = write_recipe(
            root / "lora.yaml",
            tiny_recipe_dict(
                *data,
                model={"config": TINY_VIT, "lora": {"r": 2, "alpha": 4}},
                train={"epochs": 2, "deterministic": True, "ema": {"decay": 0.9, "warmup": False}, "publish": True},
            ),
        )
        train(load_recipe(recipe), root / "work")

    root = shared_once(tmp_path_factory, "lora_run", build)
    return root / "lora.yaml", root / "work"


ALL_METRICS = ["accuracy", "precision", "recall", "f1_score", "support", "confusion_matrix"]


@pytest.fixture(scope="session")
def best_results(trained_digits, tmp_path_factory):
    """evaluate_checkpoint on the digits run's best/ with every metric and every per-sample item, as read back
    from its JSON results file."""
    from hfcls.evaluation.results import read_results

    def build(root):
        from hfcls.evaluation.checkpoint import evaluate_checkpoint
        from hfcls.evaluation.request import EvalRequest
        from hfcls.recipe import load_recipe

        recipe, work = trained_digits
        evaluate_checkpoint(
            EvalRequest(
                load_recipe(recipe),
                work / "best",
                metrics=ALL_METRICS,
                metric_options={"topk": [1, 3]},
                out=root / "best.json",
                out_items=("metrics", "pred", "class_scores"),
            )
        )

    return read_results(shared_once(tmp_path_factory, "best_results", build) / "best.json")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def based(tmp_path):
    """A recipe with two bases in another folder, the second overriding the first."""
    write(
        tmp_path / "_base_" / "data.yaml",
        """
data:
  batch_size: 16
  train: {type: imagefolder, path: a}
  train_pipeline: [{type: RandomCrop, size: 8}]
  eval_pipeline: [{type: Resize, size: 8}]
""",
    )
    write(
        tmp_path / "_base_" / "model.yaml",
        """
model: {config: {model_type: resnet, depths: [1, 1], hidden_sizes: [8, 16]}}
optim: {type: sgd, lr: 0.1, momentum: 0.8}
""",
    )
    return write(
        tmp_path / "exp" / "r.yaml",
        """
_base_: [../_base_/data.yaml, ../_base_/model.yaml]
data: {batch_size: 32, val: {type: imagefolder, path: b}}
optim: {lr: 0.05}
""",
    )


def weights(work_dir, checkpoint):
    from safetensors.torch import load_file

    return load_file(work_dir / "checkpoints" / checkpoint / "model.safetensors")


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def deterministic_rows(work_dir):
    """metrics.jsonl without its wall-clock columns."""
    from hfcls.engine.loop import WALL_CLOCK_KEYS
    from hfcls.logs import read_jsonl

    return [
        {k: v for k, v in row.items() if k not in WALL_CLOCK_KEYS} for row in read_jsonl(work_dir / "metrics.jsonl")
    ]


@pytest.fixture(scope="module")
def val_files(digits_dir):
    """The digits val images in hfcls-eval's dataset order (class folders, then file names)."""
    return [str(p) for c in range(10) for p in sorted((digits_dir / "val" / str(c)).iterdir())]


@pytest.fixture(scope="module")
def classifier(trained_digits):
    import hfcls

    return hfcls.pipeline(trained_digits[1] / "best", device="cpu", batch_size=64)


class FakeHub:
    """Stands in for the Hub's HTTP API: records what HfApi would send."""

    def __init__(self, monkeypatch):
        from huggingface_hub import HfApi, constants

        self.calls = []
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", "hf_test_token")
        monkeypatch.setattr(HfApi, "create_repo", self.create_repo)
        monkeypatch.setattr(HfApi, "create_branch", self.create_branch)
        monkeypatch.setattr(HfApi, "upload_folder", self.upload_folder)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def upload_folder(self, repo_id, folder_path, **kwargs):
        files = {p.name: p.read_bytes() for p in folder_path.iterdir()}
        self.calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


def pytest_collection_finish(session):
    """Collecting imported torch, transformers and datasets: millions of objects that live as long as the
    process. Frozen, every later collection skips them (what hfcls.cli.heavy_imports does for a command);
    otherwise each full collection of each test walks them all again (~12 % of the CPU time of the tests)."""
    gc.collect()
    gc.freeze()


def pytest_collection_modifyitems(items):
    """Modules holding a slow test first, each module's tests kept together (its fixtures built once):
    the two xdist workers take tests in this order, and a long test taken last would leave one worker
    running alone at the end."""
    modules = list(dict.fromkeys(item.module for item in items))
    slow = {item.module for item in items if item.get_closest_marker("slow")}
    rank = {module: (module not in slow, index) for index, module in enumerate(modules)}
    items.sort(key=lambda item: rank[item.module])
