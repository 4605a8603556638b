"""hfcls.cli.cli_entry on hostile input, as a user would type it into each command.

Every case calls the command's main([...]) in this process (tests/cli/test_console_scripts.py runs each
script once as a subprocess) and must end with exit status 2 and one `error:` line naming the culprit,
never a traceback: a wrong input is refused, never turned into a wrong number or a crash.
"""

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from commands import ENV, ok, user_error
from conftest import REPO, make_image_folder, tiny_recipe_dict, write_recipe
from layouts import png_header_only

# One worker writes the hostile files (`h`) and copies the shared run (`trained`), once, for every case.
pytestmark = pytest.mark.xdist_group("cli_entry")

LINES = [f"cat/{i}.png 0" for i in range(8)] + [f"dog/{i}.png 1" for i in range(8)]


def nested_aliases(levels: int = 9) -> str:
    lines = ['l0: &l0 ["x"]'] + [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * 9)}]" for k in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def recipe(root: Path, name: str, **data) -> Path:
    """A tiny recipe on root's train/val folders, with `data` keys replaced."""
    spec = tiny_recipe_dict(root / "train", root / "val")
    spec["data"].update(data)
    return write_recipe(root / name, spec)


def class_folders(root: Path, *classes, per_class=2) -> Path:
    return make_image_folder(root, per_class=per_class, classes={c: (9 * i, 90, 200) for i, c in enumerate(classes)})


@pytest.fixture(scope="module")
def h(tmp_path_factory) -> dict:
    """Every bad file the cases use, by name."""
    root = tmp_path_factory.mktemp("hostile")
    make_image_folder(root / "train", per_class=8, seed=0)
    make_image_folder(root / "val", per_class=2, seed=1)
    paths = {"root": root, "tiny": recipe(root, "tiny.yaml")}

    (root / "raises_at_import.py").write_text("raise RuntimeError('no licence server')\n")
    (root / "bad_syntax.py").write_text("def f(:\n    pass\n")
    (root / "bomb.yaml").write_text(nested_aliases() + "model: {config: {model_type: resnet, x: *l9}}\n")
    (root / "loop.yaml").write_text("model: &m {config: {model_type: resnet, again: *m}}\n")
    (root / "base3.yaml").write_text("_base_: 3\n")

    one_image = class_folders(root / "one_image", "cat", "dog", per_class=3)
    for extra in sorted((one_image / "dog").iterdir())[1:]:
        extra.unlink()
    paths["split_one"] = recipe(
        root, "split_one.yaml", train={"type": "imagefolder", "path": str(one_image)}, val=None, train_val_split=0.3
    )
    empty = class_folders(root / "empty", "cat", "dog")
    (empty / "wolf").mkdir()
    paths["empty_class"] = recipe(root, "empty_class.yaml", val={"type": "imagefolder", "path": str(empty)})
    flat = root / "flat"
    flat.mkdir()
    Image.new("RGB", (8, 8)).save(flat / "a.png")
    paths["flat"] = recipe(root, "flat.yaml", val={"type": "imagefolder", "path": str(flat)})
    nested = class_folders(root / "nested", "cat", "dog")
    shutil.move(str(nested / "dog"), str(nested / "cat" / "dog"))
    paths["nested"] = recipe(root, "nested.yaml", val={"type": "imagefolder", "path": str(nested)})
    loose = class_folders(root / "loose", "cat", "dog")
    Image.new("RGB", (8, 8)).save(loose / "stray.png")
    paths["loose"] = recipe(root, "loose.yaml", val={"type": "imagefolder", "path": str(loose)})
    latin = class_folders(root / "latin", "cat", "dog")
    os.rename(str(latin / "cat" / "0.png").encode(), str(latin / "cat").encode() + b"/caf\xe9.png")
    paths["latin_name"] = recipe(root, "latin_name.yaml", val={"type": "imagefolder", "path": str(latin)})
    single = class_folders(root / "single", "cat", per_class=4)
    paths["single_train"] = recipe(
        root,
        "single_train.yaml",
        train={"type": "imagefolder", "path": str(single)},
        val={"type": "imagefolder", "path": str(single)},
        batch_size=2,
    )
    paths["single_val"] = recipe(root, "single_val.yaml", val={"type": "imagefolder", "path": str(single)})

    def listed(name, data: bytes, prefix=root / "train", **spec):
        (root / f"{name}.txt").write_bytes(data)
        return recipe(
            root,
            f"{name}.yaml",
            val={
                "type": "annotation_list",
                "ann_file": str(root / f"{name}.txt"),
                "data_prefix": str(prefix),
                "classes": ["cat", "dog"],
                **spec,
            },
        )

    text = "\n".join(LINES) + "\n"
    paths["latin1_list"] = listed("latin1_list", (text + "caf\xe9/0.png 0\n").encode("latin-1"))
    paths["bom_list"] = listed("bom_list", b"\xef\xbb\xbf" + text.encode())
    paths["superscript"] = listed("superscript", (text + "cat/0.png \u00b3\n").encode())
    paths["climbs_out"] = listed("climbs_out", (text + "../val/cat/0.png 0\n").encode())
    paths["absolute"] = listed("absolute", (text + f"{root / 'val' / 'cat' / '0.png'} 0\n").encode())
    paths["allowed_out"] = listed("allowed_out", (text + "../val/cat/0.png 0\n").encode(), allow_outside_prefix=True)
    (root / "classes_latin1.txt").write_bytes("cat\ndog\nf\xf6x\n".encode("latin-1"))
    paths["classes_latin1"] = recipe(
        root,
        "classes_latin1.yaml",
        val={
            "type": "annotation_list",
            "ann_file": str(root / "bom_list.txt"),
            "data_prefix": str(root / "train"),
            "classes": str(root / "classes_latin1.txt"),
        },
    )
    (root / "unlabelled.txt").write_text("\n".join(line.split()[0] for line in LINES) + "\n")
    unlabelled = {
        "type": "annotation_list",
        "ann_file": str(root / "unlabelled.txt"),
        "data_prefix": str(root / "train"),
        "classes": ["cat", "dog", "fox"],
    }
    paths["unlabelled_train"] = recipe(root, "unlabelled_train.yaml", train=unlabelled)
    paths["unlabelled_test"] = recipe(root, "unlabelled_test.yaml", test=unlabelled)

    mnist = root / "mnist"
    mnist.mkdir()
    (mnist / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">III", *[2**32 - 1] * 3))
    (mnist / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 1) + b"\x00")
    paths["mnist_overflow"] = recipe(root, "mnist_overflow.yaml", val={"type": "mnist", "root": str(mnist)})
    scripted = root / "scripted"
    scripted.mkdir()
    (scripted / "scripted.py").write_text("import datasets\n")
    paths["hub_script"] = recipe(root, "hub_script.yaml", val={"type": "hub", "name": str(scripted)})
    (root / "damaged_disk").mkdir()
    (root / "damaged_disk" / "state.json").write_text("{not json")
    paths["damaged_disk"] = recipe(root, "damaged_disk.yaml", val={"type": "disk", "path": str(root / "damaged_disk")})

    huge = make_image_folder(root / "huge", per_class=8)
    (huge / "cat" / "0.png").write_bytes(png_header_only(20_000, 20_000))
    paths["huge_train"] = recipe(root, "huge_train.yaml", train={"type": "imagefolder", "path": str(huge)})
    (root / "huge.png").write_bytes(png_header_only(20_000, 20_000))
    Image.fromarray(np.zeros((8, 8), np.float32)).save(root / "float.tiff")
    (root / "badplot").mkdir()
    (root / "badplot" / "metrics.jsonl").write_text('{"epoch": 1, "loss": 1.0}\n{"epoch": 2, "lo\n')
    return paths


@pytest.fixture(scope="module")
def trained(h, two_epoch_run) -> dict:
    """A finished run (two_epoch_run), a copy of its work dir to resume, its published file renamed,
    and its val data with the classes renamed."""
    root = h["root"]
    shutil.copytree(two_epoch_run / "checkpoints", root / "resumable" / "checkpoints")
    renamed = root / "renamed.safetensors"  # no hash in the name: read by its own metadata
    shutil.copy(next((two_epoch_run / "publish").glob("*.safetensors")), renamed)
    other_names = class_folders(root / "other_names", "lion", "tiger", "bear")
    return {
        "run": two_epoch_run,
        "recipe": two_epoch_run / "recipe.yaml",
        "resumable": root / "resumable",
        "renamed": renamed,
        "other_names": other_names,
        "image": two_epoch_run.parent / "data" / "val" / "cat" / "0.png",
    }


# (case, command, arguments with {placeholders} from `h`, words the error line names)
RECIPE_CASES = [
    ("negative lr", "hfcls-train", ["{tiny}", "optim.lr=-1"], ["optim.lr", "at least 0"]),
    ("nan lr", "hfcls-train", ["{tiny}", "optim.lr=.nan"], ["optim.lr", "finite"]),
    ("betas above 1", "hfcls-train", ["{tiny}", "optim.betas=[2,3]"], ["optim.betas", "[0, 1)"]),
    ("negative momentum", "hfcls-train", ["{tiny}", "optim.momentum=-5"], ["optim.momentum"]),
    ("negative weight decay", "hfcls-train", ["{tiny}", "optim.weight_decay=-1"], ["optim.weight_decay"]),
    ("negative seed", "hfcls-train", ["{tiny}", "--seed", "-1"], ["seed", "4294967295"]),
    ("label smoothing 5", "hfcls-train", ["{tiny}", "train.label_smoothing=5"], ["train.label_smoothing"]),
    ("negative clip", "hfcls-train", ["{tiny}", "train.clip_grad_norm=-1"], ["train.clip_grad_norm", "above 0"]),
    ("negative eval batch", "hfcls-train", ["{tiny}", "data.eval_batch_size=-1"], ["data.eval_batch_size"]),
    (
        "pipeline size 0",
        "hfcls-train",
        ["{tiny}", "data.train_pipeline.0.size=0"],
        ["data.train_pipeline[0].size", "RandomResizedCrop"],
    ),
    (
        "steps not numbers",
        "hfcls-train",
        ["{tiny}", "schedule.type=step", "schedule.steps=[abc]"],
        ["schedule.steps", "whole numbers"],
    ),
    ("negative gamma", "hfcls-train", ["{tiny}", "schedule.gamma=-1"], ["schedule.gamma", "above 0"]),
    ("negative warmup", "hfcls-train", ["{tiny}", "schedule.warmup_epochs=-3"], ["schedule.warmup_epochs"]),
    ("ema decay a word", "hfcls-train", ["{tiny}", "train.ema={decay: abc}"], ["train.ema.decay"]),
    ("std 0 (not 'lower optim.lr')", "hfcls-train", ["{tiny}", "data.std=[0,0,0]"], ["data.std", "(0, 1]"]),
    ("pixel limit 0", "hfcls-train", ["{tiny}", "data.max_image_pixels=0"], ["data.max_image_pixels"]),
    ("port out of range", "hfcls-train", ["{tiny}", "dist.port=70000"], ["dist.port"]),
    (
        "custom import raises",
        "hfcls-train",
        ["{tiny}", "custom_imports=[raises_at_import]"],
        ["custom_imports", "raises_at_import", "RuntimeError: no licence server", "line 1"],
    ),
    (
        "custom import syntax error",
        "hfcls-train",
        ["{tiny}", "custom_imports=[bad_syntax]"],
        ["custom_imports", "bad_syntax", "SyntaxError", "line 1"],
    ),
    ("custom import not a string", "hfcls-train", ["{tiny}", "custom_imports=[3]"], ["custom_imports", "names"]),
    ("nested YAML aliases", "hfcls-verify", ["{root}/bomb.yaml"], ["bomb.yaml", "aliases", "100,000"]),
    ("recipe holding itself", "hfcls-verify", ["{root}/loop.yaml"], ["loop.yaml", "alias"]),
    ("_base_ a number", "hfcls-verify", ["{root}/base3.yaml"], ["_base_", "got 3"]),
    (
        "metric threshold 2",
        "hfcls-eval",
        ["{tiny}", "{root}/x", "--metrics", "accuracy", "--metric-options", "thrs=2"],
        ["thrs", "from 0 to 1"],
    ),
    ("prepare fraction 2", "hfcls-prepare", ["digits", "{root}/digits", "--val-fraction", "2"], ["--val-fraction"]),
]

DATA_CASES = [
    ("train_val_split, a one-image class", "hfcls-verify", ["{split_one}"], ["data.train_val_split", "'dog'"]),
    ("empty class folder", "hfcls-verify", ["{empty_class}"], ["class folder wolf holds no images"]),
    ("flat folder (not 'no column label')", "hfcls-verify", ["{flat}"], ["no class sub-folders"]),
    ("class folder in a class folder", "hfcls-verify", ["{nested}"], ["class folder cat holds a folder (dog)"]),
    ("image beside the class folders", "hfcls-verify", ["{loose}"], ["stray.png", "beside the class folders"]),
    ("file name not UTF-8", "hfcls-verify", ["{latin_name}"], ["caf\\xe9.png", "not UTF-8"]),
    ("Latin-1 annotation list", "hfcls-verify", ["{latin1_list}"], ["latin1_list.txt line 17", "not UTF-8"]),
    ("superscript label", "hfcls-verify", ["{superscript}"], ["superscript.txt line 17", "'³'"]),
    (
        "../ out of the prefix",
        "hfcls-verify",
        ["{climbs_out}"],
        ["line 17", "../val/cat/0.png", "allow_outside_prefix"],
    ),
    ("absolute path out of the prefix", "hfcls-verify", ["{absolute}"], ["line 17", "allow_outside_prefix"]),
    ("Latin-1 classes file", "hfcls-verify", ["{classes_latin1}"], ["classes file", "line 3", "not UTF-8"]),
    (
        "MNIST header overflowing",
        "hfcls-verify",
        ["{mnist_overflow}"],
        ["4294967295 x 4294967295 x 4294967295 = 79,228,162,458,924,105,385,300,197,375 bytes"],
    ),
    ("Hub source with a dataset script", "hfcls-verify", ["{hub_script}"], ["hub dataset", "scripted.py"]),
    ("damaged save_to_disk folder", "hfcls-verify", ["{damaged_disk}"], ["disk dataset", "save_to_disk"]),
    ("verify --workers -1", "hfcls-verify", ["{tiny}", "--workers", "-1"], ["--workers"]),
    ("train on one class", "hfcls-train", ["{single_train}", "--work-dir", "{root}/w1"], ["data.train has 1 class"]),
    (
        "batch larger than the data",
        "hfcls-train",
        ["{tiny}", "data.batch_size=1000", "--work-dir", "{root}/w2"],
        ["no full batch", "data.batch_size"],
    ),
    (
        "unlabelled training list",
        "hfcls-train",
        ["{unlabelled_train}", "--work-dir", "{root}/w3"],
        ["data.train", "no label"],
    ),
    (
        "20000 x 20000 PNG in training",
        "hfcls-train",
        ["{huge_train}", "--work-dir", "{root}/w4"],
        ["0.png", "data.max_image_pixels", "skip_bad_images"],
    ),
    (
        "every image skipped",
        "hfcls-train",
        ["{tiny}", "data.max_image_pixels=100", "data.skip_bad_images=true", "--work-dir", "{root}/w5"],
        ["no image to train on", "16 x 16"],
    ),
    (
        "scheduler kwargs refused",
        "hfcls-train",
        ["{tiny}", "schedule.type=cosine", "schedule.scheduler_kwargs={num_cycle: 2}", "--work-dir", "{root}/w6"],
        ["schedule.scheduler_kwargs", "num_cycle"],
    ),
    (
        "model.config of the wrong type",
        "hfcls-train",
        ["{tiny}", "model.config.hidden_sizes=abc", "--work-dir", "{root}/w7"],
        ["model.config", "hidden_sizes"],
    ),
    (
        "model.config size 0",
        "hfcls-train",
        ["{tiny}", "model.config.embedding_size=0", "--work-dir", "{root}/w8"],
        ["model.config", "holds nothing"],
    ),
    (
        "unlabelled test split with metrics",
        "hfcls-eval",
        ["{unlabelled_test}", "{root}/renamed.safetensors", "--split", "test", "--metrics", "accuracy"],
        ["data.test", "no label", "--out"],
    ),
    (
        "demo 20000 x 20000 PNG",
        "hfcls-demo",
        ["{root}/huge.png", "{root}/renamed.safetensors"],
        ["huge.png", "data.max_image_pixels"],
    ),
    (
        "demo float TIFF",
        "hfcls-demo",
        ["{root}/float.tiff", "{root}/renamed.safetensors"],
        ["float.tiff", "no fixed range"],
    ),
    (
        "demo --device foo",
        "hfcls-demo",
        ["{root}/float.tiff", "{root}/renamed.safetensors", "--device", "foo"],
        ["--device foo"],
    ),
    (
        "demo --device cuda:7",
        "hfcls-demo",
        ["{root}/float.tiff", "{root}/renamed.safetensors", "--device", "cuda:7"],
        ["--device cuda:7", "CUDA device"],
    ),
    (
        "demo --batch-size 0",
        "hfcls-demo",
        ["{root}/huge.png", "{root}/renamed.safetensors", "--batch-size", "0"],
        ["--batch-size"],
    ),
    (
        "demo --out not a picture",
        "hfcls-demo",
        ["{root}/huge.png", "{root}/renamed.safetensors", "--out", "{root}/x.txt"],
        ["--out", "x.txt", ".png"],
    ),
    ("browse --columns -3", "hfcls-browse", ["{tiny}", "--columns", "-3"], ["--columns"]),
    ("flops --shape 0 0", "hfcls-flops", ["{tiny}", "--shape", "0", "0"], ["--shape 0 0"]),
    (
        "flops --shape too large",
        "hfcls-flops",
        ["{tiny}", "--shape", "100000", "100000"],
        ["--shape", "data.max_image_pixels"],
    ),
    ("plot a cut-off metrics.jsonl", "hfcls-plot", ["{root}/badplot"], ["metrics.jsonl line 2", "not a JSON row"]),
]


def arguments(args, paths) -> list:
    """`args` with each {name} of `paths` filled in (YAML braces left alone)."""
    filled = []
    for arg in args:
        for name, path in paths.items():
            arg = arg.replace(f"{{{name}}}", str(path))
        filled.append(arg)
    return filled


@pytest.mark.parametrize("case, script, args, words", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_a_bad_recipe_value_is_one_line(h, command, case, script, args, words):
    user_error(command(script, *arguments(args, h), cwd=h["root"]), *words)


@pytest.mark.parametrize("case, script, args, words", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_and_flags_are_one_line(h, trained, command, case, script, args, words):
    user_error(command(script, *arguments(args, h), cwd=h["root"]), *words)
    assert not any((h["root"] / name / "best").exists() for name in ("w1", "w2", "w3", "w4", "w5"))  # none published


def test_a_resume_that_would_change_the_schedule_names_the_key(h, trained, command):
    before = sorted(p.name for p in (trained["resumable"] / "checkpoints").iterdir())
    line = user_error(
        command(
            "hfcls-train",
            trained["recipe"],
            "--work-dir",
            trained["resumable"],
            "--resume-from",
            "auto",
            "train.epochs=3",
            "data.batch_size=4",
        ),
        "data.batch_size 8",
        "this run has 4",
    )
    assert "--load-from" in line
    assert sorted(p.name for p in (trained["resumable"] / "checkpoints").iterdir()) == before
    assert not (trained["resumable"] / "recipe.yaml").exists()  # the refused run wrote no recipe


def test_a_renamed_published_file_names_its_own_classes(h, trained, command):
    user_error(
        command(
            "hfcls-eval",
            trained["recipe"],
            trained["renamed"],
            "--metrics",
            "accuracy",
            "--cfg-options",
            f"data.val.path={trained['other_names']}",
        ),
        "lion",
        "not among the checkpoint's",
    )
    out = ok(command("hfcls-demo", trained["image"], trained["renamed"], "--topk", "3"))
    assert {line.split()[1] for line in out.splitlines()[1:4]} == {"cat", "dog", "fox"}  # its names, no recipe


@pytest.mark.parametrize("recipe_key", ["bom_list", "single_val", "allowed_out"])
def test_what_is_right_still_passes(h, command, recipe_key):
    out = ok(command("hfcls-verify", h[recipe_key]))
    assert "decode and their labels fit the classes" in out


def test_the_launch_scripts_refuse_counts_that_are_not_numbers(h, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "accelerate").write_text('#!/usr/bin/env bash\necho ran >> "$ACCELERATE_LOG"\n')
    (bin_dir / "accelerate").chmod(0o755)
    env = {
        **ENV,
        "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "ACCELERATE_LOG": str(tmp_path / "log"),
    }
    cases = [
        (["dist_train.sh", h["tiny"], "abc"], {}, "error: GPUS=abc is not a whole number of at least 1"),
        (["dist_train.sh", h["tiny"], "0"], {}, "error: GPUS=0 is not a whole number of at least 1"),
        (["dist_test.sh", h["tiny"], "best", "2x"], {}, "error: GPUS=2x is not a whole number"),
        (["dist_train.sh", h["tiny"], "2"], {"NNODES": "two"}, "error: NNODES=two is not a whole number"),
        (
            ["dist_train.sh", h["tiny"], "2"],
            {"NNODES": "2", "NODE_RANK": "2"},
            "error: NODE_RANK=2 is not below NNODES=2",
        ),
        (["slurm_train.sh", "gpu", "job", h["tiny"], "work"], {"GPUS": "abc"}, "error: GPUS=abc is not a whole number"),
        (
            ["slurm_train.sh", "gpu", "job", h["tiny"], "work"],
            {"GPUS": "8", "GPUS_PER_NODE": "0"},
            "error: GPUS_PER_NODE=0 is not a whole number of at least 1",
        ),
    ]
    for (script, *args), extra, line in cases:
        done = subprocess.run(
            [str(REPO / "launch" / script), *map(str, args)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith(line), (script, extra, done.stderr)
    assert not (tmp_path / "log").exists()  # accelerate never started
