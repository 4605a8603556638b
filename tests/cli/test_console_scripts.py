"""Every console script, run as a user runs it: its exit status, what it printed or wrote.

0 on success, 2 with one line naming the problem on a user error, never a traceback. Each script runs
once as a real subprocess (`run`): its success, exit 0, or, where a user error is found before the heavy
imports, that error, exit 2 (every success runs as a subprocess in tests/e2e/test_docs.py too). Its other
cases call the same main([...]) in this process (`command`), which ends the same way.
"""

import json
import re
import shutil
import socket
from pathlib import Path

import pytest
import torch

from commands import console_scripts, ok, run, user_error
from conftest import REPO, make_image_folder, make_tiny_data, tiny_recipe_dict, write_recipe
from layouts import write_voc

# One worker builds `trained` (an hfcls-train subprocess) and runs every test that reads it.
pytestmark = pytest.mark.xdist_group("console_scripts")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(folder, recipe, work dir) of a 2-epoch EMA run that hfcls-train itself made."""
    root = tmp_path_factory.mktemp("cli")
    train_dir, val_dir = make_tiny_data(root)
    recipe = write_recipe(
        root / "tiny.yaml",
        tiny_recipe_dict(
            train_dir, val_dir, train={"epochs": 2, "log_interval": 2, "ema": {"decay": 0.9}, "publish": True}
        ),
    )
    out = ok(run("hfcls-train", recipe, "--work-dir", root / "work"))
    assert "epoch 2:" in out
    return root, recipe, root / "work"


def test_every_console_script_is_run_here():
    tested = {name.removeprefix("test_").replace("_", "-") for name in globals() if name.startswith("test_hfcls_")}
    assert set(console_scripts()) == tested


def test_each_runs_once_as_a_subprocess():
    ran = re.findall(r"\brun\(\s*\"([\w.-]+)\"", Path(__file__).read_text())
    assert sorted(ran) == sorted([*console_scripts(), "hfcls.cli.dist"])


def test_hfcls_train(trained, tmp_path, command):
    root, recipe, work = trained
    assert (work / "best" / "config.json").is_file() and list((work / "publish").glob("*.safetensors"))
    user_error(command("hfcls-train", tmp_path / "missing.yaml"), "missing.yaml", "does not exist")
    user_error(command("hfcls-train", recipe, "optim.lrr=0.1"), "optim.lrr", "did you mean")
    # A second run into the same work dir is refused, and nothing of the first is touched.
    before = sorted(p.name for p in (work / "checkpoints").iterdir())
    user_error(command("hfcls-train", recipe, "--work-dir", work), "--resume-from auto")
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == before


def test_hfcls_prepare(tmp_path, command):
    assert "wrote digits" in ok(run("hfcls-prepare", "digits", tmp_path / "digits"))
    assert len(list((tmp_path / "digits" / "val").glob("*/*.png"))) == 360
    user_error(
        command("hfcls-prepare", "digits", tmp_path / "digits"), "digits is a non-empty folder already", "--overwrite"
    )
    # shrink: a recipe's splits as parquet shards of smaller images, read back by a disk source.
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe_dict(
            make_image_folder(tmp_path / "train", per_class=4), make_image_folder(tmp_path / "val", per_class=2)
        ),
    )
    out = ok(
        command(
            "hfcls-prepare",
            "shrink",
            recipe,
            tmp_path / "small",
            "data.val=null",
            "--short-side",
            "8",
            "--workers",
            "2",
            "--rows-per-shard",
            "5",
        )
    )
    assert "wrote train: 12 images, shorter side at most 8, in 3 parquet shard(s)" in out
    assert f"data.train={{type: disk, path: {tmp_path / 'small'}/train}}" in out and "wrote val" not in out
    assert len(list((tmp_path / "small" / "train").glob("train-0000?-of-00003.parquet"))) == 3
    ok(command("hfcls-verify", recipe, f"data.train={{type: disk, path: {tmp_path / 'small' / 'train'}}}"))
    user_error(
        command("hfcls-prepare", "shrink", recipe, tmp_path / "x", "--short-side", "0"), "--short-side", "at least 1"
    )
    user_error(command("hfcls-prepare", "shrink", recipe, tmp_path / "small"), "small is a non-empty folder already")


def test_prepare_writes_imbalanced_and_multilabel_digits(tmp_path, command):
    out = ok(command("hfcls-prepare", "imbalanced_digits", tmp_path / "imbalanced"))
    assert out.strip() == f"wrote imbalanced_digits to {tmp_path / 'imbalanced'}: 1298 train, 360 val"
    counts = [len(list((tmp_path / "imbalanced" / "train" / str(c)).iterdir())) for c in range(10)]
    assert counts[0] == 3 and min(counts[1:]) > 130  # 2 % of class 0's 142 training images
    assert "1437 train, 360 val" in ok(command("hfcls-prepare", "multilabel_digits", tmp_path / "multi"))
    rows = [json.loads(line) for line in (tmp_path / "multi" / "val" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 360 and all(2 <= len(set(row["labels"])) == len(row["labels"]) <= 3 for row in rows)
    assert (tmp_path / "multi" / "val" / rows[0]["file_name"]).is_file()
    user_error(command("hfcls-prepare", "multilabel_digits", tmp_path / "multi"), "multi is a non-empty folder already")


def test_hfcls_verify(trained, command):
    root, recipe, _ = trained
    assert "all 36 images" in ok(command("hfcls-verify", recipe))
    user_error(run("hfcls-verify", recipe, "data.batch_size=0"), "data.batch_size")


def test_hfcls_browse(trained, tmp_path, command):
    root, recipe, _ = trained
    assert "saved 4 val samples" in ok(
        command("hfcls-browse", recipe, "--split", "val", "--n", "4", "--out", tmp_path / "grid.png")
    )
    assert (tmp_path / "grid.png").stat().st_size > 1000
    user_error(run("hfcls-browse", recipe, "--n", "0"), "--n")


def test_hfcls_flops(trained, command):
    root, recipe, _ = trained
    out = ok(command("hfcls-flops", recipe, "--num-classes", "3"))
    assert "Input shape: (3, 16, 16)" in out and "Params:" in out
    user_error(run("hfcls-flops", root / "nope.yaml"), "nope.yaml")


def test_hfcls_publish(trained, tmp_path, command):
    root, recipe, work = trained
    out = ok(run("hfcls-publish", work / "checkpoints" / "epoch_2", tmp_path / "release" / "tiny"))
    published = Path(out.strip().splitlines()[-1])
    assert published.is_file() and published.name.startswith("tiny-")
    user_error(command("hfcls-publish", work / "checkpoints" / "epoch_9", tmp_path / "x"), "epoch_9", "does not exist")


def test_hfcls_push(trained, tmp_path, command):
    root, recipe, work = trained
    out = ok(run("hfcls-push", work / "best", "me/tiny", "--dry-run", "--out", tmp_path / "staged"))
    assert "would upload" in out and (tmp_path / "staged" / "README.md").is_file()
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    user_error(
        command("hfcls-push", work / "best", "me/tiny", "--dry-run", "--out", keep), "non-empty folder", "--overwrite"
    )
    assert (keep / "notes.txt").read_text() == "mine"
    # --space: the Space running the demo app on the repo, beside the model's folder.
    out = ok(
        command("hfcls-push", work / "best", "me/tiny", "--dry-run", "--out", tmp_path / "s", "--space", "me/demo")
    )
    assert "would upload it to Space me/demo, running the app on me/tiny" in out
    assert sorted(p.name for p in (tmp_path / "s-space").iterdir()) == ["README.md", "app.py", "requirements.txt"]
    user_error(
        command("hfcls-push", work / "best", "me/tiny", "--dry-run", "--space"), "--space", "expected one argument"
    )
    user_error(
        command("hfcls-push", work / "best", "me/tiny", "--dry-run", "--space", "demo"), "--space demo", "user/name"
    )


def test_hfcls_eval(trained, tmp_path, command):
    root, recipe, work = trained
    out = ok(
        command(
            "hfcls-eval",
            recipe,
            work / "checkpoints" / "epoch_2",
            "--metrics",
            "accuracy",
            "--out",
            tmp_path / "r.json",
        )
    )
    assert "accuracy_top1" in out and json.loads((tmp_path / "r.json").read_text())["predictions"]
    user_error(command("hfcls-eval", recipe, work / "best"), "nothing to report")
    user_error(run("hfcls-eval", recipe, work / "best", "--metrics", "acuracy"), "acuracy", "did you mean")


def test_hfcls_demo(trained, tmp_path, command):
    root, recipe, work = trained
    lone = tmp_path / "elsewhere" / next((work / "publish").glob("*.safetensors")).name
    lone.parent.mkdir()
    shutil.copy(next((work / "publish").glob("*.safetensors")), lone)  # no work dir, no recipe beside it
    out = ok(command("hfcls-demo", root / "data" / "val" / "cat" / "0.png", lone, "--topk", "2"))
    assert out.splitlines()[1].strip().startswith("1. ")
    user_error(run("hfcls-demo", root / "data" / "val" / "cat" / "0.png", lone, "--topk", "0"), "--topk")


def test_hfcls_retrieve(trained, tmp_path, command):
    root, recipe, work = trained
    shutil.copytree(work / "best", tmp_path / "best")  # the gallery index goes beside it, not into the shared run
    queries = [root / "data" / "val" / "cat" / "0.png", root / "data" / "val" / "fox" / "0.png"]
    out = ok(
        command(
            "hfcls-retrieve",
            *queries,
            tmp_path / "best",
            "--gallery",
            f"{recipe}:train",
            "--topk",
            "3",
            "--out",
            tmp_path / "matches.csv",
        )
    )
    assert [line.split()[-1] for line in out.splitlines() if line.startswith("  ")] == ["(cat)"] * 3 + ["(fox)"] * 3
    rows = (tmp_path / "matches.csv").read_text().splitlines()
    assert rows[0] == "query,rank,image,similarity,label" and len(rows) == 7 and rows[1].endswith(",cat")
    user_error(
        command(
            "hfcls-retrieve",
            queries[0],
            tmp_path / "best",
            "--gallery",
            f"{recipe}:train",
            "--out",
            tmp_path / "matches.csv",
        ),
        "--out",
        "is a file already",
    )
    gallery = shutil.copytree(root / "data" / "train", tmp_path / "gallery")
    ok(command("hfcls-retrieve", queries[0], tmp_path / "best", "--gallery", gallery))
    shutil.copy(queries[1], gallery / "fox" / "extra.png")
    user_error(
        command("hfcls-retrieve", queries[0], tmp_path / "best", "--gallery", gallery),
        "is stale: since it was built 1 images were added",
        "--overwrite",
    )
    assert "1. 1.0000" in ok(
        command("hfcls-retrieve", queries[1], tmp_path / "best", "--gallery", gallery, "--overwrite")
    )
    (tmp_path / "empty").mkdir()
    user_error(
        command("hfcls-retrieve", queries[0], tmp_path / "best", "--gallery", tmp_path / "empty"),
        "--gallery",
        "holds no image files",
    )
    user_error(run("hfcls-retrieve", queries[0], tmp_path / "best", "--gallery", gallery, "--topk", "0"), "--topk")


def test_eval_and_demo_of_a_multi_label_model(multilabel_run, tmp_path, command):
    recipe, work = multilabel_run
    out = ok(
        command("hfcls-eval", recipe, work / "best", "--metrics", "mAP", "CR", "OF1", "--out", tmp_path / "r.json")
    )
    assert "| mAP " in out and "| class | AP_classwise | recall_classwise |" in out and "| fox " in out
    records = json.loads((tmp_path / "r.json").read_text())["predictions"]
    assert len(records) == 12 and all(isinstance(r["gt_label"], list) and r["gt_label"] for r in records)
    user_error(
        command("hfcls-eval", recipe, work / "best", "--metrics", "accuracy"),
        "accuracy",
        "data.val is multi-label",
        "use mAP",
    )
    image = recipe.parent / "data" / "val" / "images" / "0.png"
    lines = ok(command("hfcls-demo", image, work / "best", "--threshold", "0.3")).splitlines()
    scores = [float(line.split()[-1]) for line in lines[1:] if line.strip()[0].isdigit()]
    assert lines[0] == str(image) and scores == sorted(scores, reverse=True) and all(s >= 0.3 for s in scores)
    user_error(command("hfcls-demo", image, work / "best", "--threshold", "1.5"), "--threshold", "between 0 and 1")


def test_verify_and_browse_read_multi_label_data(multilabel_run, tmp_path, command):
    recipe, _ = multilabel_run
    assert "all 36 images in train, val decode" in ok(command("hfcls-verify", recipe))
    assert "saved 4 val samples" in ok(
        command("hfcls-browse", recipe, "--split", "val", "--n", "4", "--out", tmp_path / "grid.png")
    )


def test_bad_multi_label_input_is_one_line(multilabel_run, tmp_path, command):
    """A label outside the classes, an image without labels, an XML that does not parse: file and line."""
    recipe, _ = multilabel_run
    train = recipe.parent / "data" / "train"
    lists = tmp_path / "train.txt"
    lists.write_text("images/0.png 0,1\nimages/1.png 2,3\n")
    spec = f"data.train={{type: annotation_list, ann_file: {lists}, data_prefix: {train}, classes: [cat, dog, fox]}}"
    user_error(command("hfcls-verify", recipe, spec), f"{lists} line 2", "label 3 is outside [0, 3)")
    lists.write_text("images/0.png 0,1\nimages/1.png\n")
    user_error(command("hfcls-verify", recipe, spec), f"{lists} line 2", "no labels", "allow_empty: true")
    voc = write_voc(tmp_path / "VOC2007")
    xml = voc / "Annotations" / "000003.xml"
    xml.write_text(xml.read_text().replace("<difficult>", "<difficult", 1))
    user_error(
        command("hfcls-verify", recipe, f"data.train={{type: voc, root: {voc}}}", "data.val=null"),
        f"{xml} line 7",
        "does not parse",
    )


def test_hfcls_plot(trained, tmp_path, command):
    root, recipe, work = trained
    ok(command("hfcls-plot", work, "--out", tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 1000
    user_error(run("hfcls-plot", tmp_path / "no_run"), "metrics.jsonl")


def test_hfcls_bench(trained, tmp_path, command):
    root, recipe, _ = trained
    out = ok(
        command(
            "hfcls-bench",
            recipe,
            "--steps",
            "2",
            "--warmup",
            "0",
            "--rounds",
            "1",
            "--baseline",
            "--json",
            tmp_path / "b.json",
        )
    )
    assert "ratio hfcls loader, fp32 NCHW / baseline" in out
    assert len(json.loads((tmp_path / "b.json").read_text())["results"]) == 2
    user_error(run("hfcls-bench", recipe, "data.val=null", "--what", "eval"), "data.val")
    # Decoding on the device, against the compute-only ceiling: the report GPU runs give (benchmarks/run_gpu.sh).
    out = ok(
        command(
            "hfcls-bench",
            recipe,
            "data.decode=cpu",
            "--what",
            "eval",
            "--synthetic",
            "--steps",
            "2",
            "--warmup",
            "0",
            "--rounds",
            "1",
        )
    )
    assert "data wait" in out and "real / synthetic hfcls decode cpu, fp32 NCHW: " in out
    if not torch.cuda.is_available():
        user_error(command("hfcls-bench", recipe, "data.decode=cuda"), "data.decode=cuda", "data.decode=cpu")


def test_launch_helpers_module(command):
    root = REPO / "recipes" / "digits" / "resnet-tiny_1xb64_digits.yaml"
    assert ok(run("hfcls.cli.dist", "port", root)).strip() == "29500"
    user_error(command("hfcls.cli.dist", "check-port", "abc"), "port", "1 to 65535")


def test_hfcls_export(trained, tmp_path, command):
    root, recipe, work = trained
    out = ok(command("hfcls-export", work / "best", tmp_path / "m.onnx", "--dynamic-batch"))
    assert "max |delta logit|" in out and "top-1 accuracy: pytorch" in out and (tmp_path / "m.onnx").is_file()
    # The graph evaluates like any checkpoint, through onnxruntime.
    evaluated = ok(
        command("hfcls-eval", recipe, tmp_path / "m.onnx", "--metrics", "accuracy", "--out", tmp_path / "o.json")
    )
    torch_eval = ok(command("hfcls-eval", recipe, work / "best", "--metrics", "accuracy"))
    line = [row for row in evaluated.splitlines() if "accuracy_top1" in row]
    assert line and line == [row for row in torch_eval.splitlines() if "accuracy_top1" in row]
    assert json.loads((tmp_path / "o.json").read_text())["predictions"]
    user_error(run("hfcls-export", work / "best", tmp_path / "x.onnx", "--opset", "99"), "--opset 99", "opsets 7 to")
    user_error(command("hfcls-export", work / "best", tmp_path / "m.onnx"), "m.onnx", "--overwrite")
    # int8 (tests/artifacts/test_quantize.py): from the float32 graph just written, not past float16.
    out = ok(
        command("hfcls-export", tmp_path / "m.onnx", tmp_path / "q.onnx", "--quantize", "int8", "--recipe", recipe)
    )
    assert "int8 (static quantization) against float32 on 12 images: top-1 agreement 100.00%" in out
    user_error(
        command("hfcls-export", work / "best", tmp_path / "h.onnx", "--fp16", "--quantize", "int8"),
        "--quantize",
        "not allowed with argument --fp16",
    )


def test_hfcls_app(trained, tmp_path, command):
    root, recipe, work = trained
    with socket.socket() as taken:  # a server already on the port: refused before torch or gradio load
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        user_error(run("hfcls-app", work / "best", "--port", port), f"--port {port} on 127.0.0.1 is in use")
    notes = tmp_path / "examples" / "notes.txt"
    notes.parent.mkdir()
    notes.write_text("not an image")
    user_error(
        command("hfcls-app", work / "best", "--port", port, "--examples", notes.parent), "--examples", "notes.txt"
    )
    user_error(command("hfcls-app", work / "best", "--topk", "0"), "--topk", "at least 1")


def test_hfcls_cam(trained, tmp_path, command):
    root, recipe, work = trained
    out = ok(
        run(
            "hfcls-cam",
            root / "data" / "val" / "cat" / "0.png",
            work / "best",
            "--method",
            "gradcam++",
            "--out",
            tmp_path / "cam.png",
        )
    )
    assert "gradcam++ of class" in out and (tmp_path / "cam.png").stat().st_size > 2000
    user_error(
        command("hfcls-cam", root / "data" / "val" / "cat" / "0.png", work / "best", "--layer", "resnet.encoder.stage"),
        "--layer resnet.encoder.stage",
        "close names",
        "resnet.encoder.stages",
    )


def test_hfcls_analyze(trained, tmp_path, command):
    root, recipe, work = trained
    ok(command("hfcls-eval", recipe, work / "best", "--out", tmp_path / "r.pkl", "--out-items", "pred"))
    out = ok(run("hfcls-analyze", tmp_path / "r.pkl", "--out", tmp_path / "analysis", "--n", "4"))
    assert "mistakes in 12 images" in out
    assert {p.name for p in (tmp_path / "analysis").iterdir()} == {
        "failures.png",
        "successes.png",
        "per_class_accuracy.png",
        "confusion_pairs.csv",
    }
    ok(
        command(
            "hfcls-eval",
            recipe,
            work / "best",
            "--metrics",
            "accuracy",
            "--out",
            tmp_path / "m.json",
            "--out-items",
            "metrics",
        )
    )
    user_error(
        command("hfcls-analyze", tmp_path / "m.json", "--out", tmp_path / "a2"), "m.json", "--out-items metrics pred"
    )


def test_hfcls_lr(trained, tmp_path, command):
    root, recipe, _ = trained
    out = ok(command("hfcls-lr", recipe, "train.epochs=4", "--out", tmp_path / "lr.png"))
    assert out.startswith("12 steps (4 epochs x 3)") and (tmp_path / "lr.png").stat().st_size > 2000
    user_error(run("hfcls-lr", recipe, "schedule.type=cosinus"), "cosinus", "did you mean")


def test_hfcls_average(trained, tmp_path, command):
    from safetensors.torch import load_file

    import hfcls.modeling  # noqa: F401  registers lenet5
    from hfcls.artifacts.export import image_processor, save_hf_folder
    from hfcls.recipe.schema import DataSection

    root, recipe, work = trained
    epochs = [work / "checkpoints" / f"epoch_{e}" for e in (1, 2)]
    out = ok(run("hfcls-average", *epochs, tmp_path / "avg"))
    averaged = load_file(next(tmp_path.glob("avg-*.safetensors")))
    ema = [load_file(e / "ema.safetensors") for e in epochs]  # an EMA run averages what it evaluated
    key = "classifier.1.weight"
    assert "averaged 2 checkpoints" in out and torch_close(averaged[key], (ema[0][key] + ema[1][key]) / 2)
    ok(command("hfcls-eval", recipe, next(tmp_path.glob("avg-*.safetensors")), "--metrics", "accuracy"))
    from transformers import AutoConfig, AutoModelForImageClassification

    other = AutoModelForImageClassification.from_config(AutoConfig.for_model("lenet5", num_channels=3, num_labels=3))
    save_hf_folder(other, image_processor(DataSection(eval_pipeline=[{"type": "Resize", "size": 32}])), tmp_path / "le")
    user_error(
        command("hfcls-average", work / "best", tmp_path / "le", tmp_path / "bad"),
        "different architectures",
        "resnet and lenet5",
    )


def torch_close(a, b) -> bool:
    return bool((a - b).abs().max() < 1e-6)


def test_new_flags_of_existing_commands(trained, tmp_path, command):
    root, recipe, work = trained
    printed = ok(command("hfcls-train", recipe, "optim.lr=0.5", "--print-recipe"))
    assert "lr: 0.5" in printed and "epochs: 2" in printed and not (tmp_path / "work").exists()
    ok(
        command(
            "hfcls-eval",
            recipe,
            work / "best",
            "--tta",
            "flip,crops",
            "--metrics",
            "accuracy",
            "--out",
            tmp_path / "f.json",
            "--out-items",
            "pred",
            "features",
        )
    )
    records = json.loads((tmp_path / "f.json").read_text())["predictions"]
    assert len(records) == 12 and len(records[0]["features"]) == 16 and records[0]["image"].endswith(".png")
    user_error(command("hfcls-eval", recipe, work / "best", "--metrics", "accuracy", "--tta", "flips"), "flips", "flip")
    for suffix in ("csv", "json"):
        ok(
            command(
                "hfcls-demo", root / "data" / "val", work / "best", "--topk", "2", "--out", tmp_path / f"p.{suffix}"
            )
        )
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "path,label_1,score_1,label_2,score_2" and len(rows) == 13
    predictions = json.loads((tmp_path / "p.json").read_text())
    assert len(predictions) == 12 and len(predictions[0]["predictions"]) == 2
    assert (
        rows[1].split(",")[0] == predictions[0]["path"]
        and rows[1].split(",")[1] == predictions[0]["predictions"][0]["label"]
    )
