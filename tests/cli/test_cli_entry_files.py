"""hfcls.cli.cli_entry on hostile files, round three (issue #25): a lock or work dir that is not what it
seems, torn run records, source rows that cannot be read honestly, model files that declare what they do
not hold, and every stop's way forward.

Each case runs the command's main([...]) in this process: exit status 2 and one `error:` line naming the
culprit, no traceback, nothing already there lost; where the input is valid after all (a Latin-1 VOC
annotation, a torn log line) the command reads it and says what it left out. What every output flag does
with a place that exists is tests/cli/test_outputs.py's.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hfcls.artifacts.describe import safetensors_metadata
from hfcls.errors import HfclsError

from commands import ok, user_error
from conftest import make_image_folder, tiny_recipe_dict, write_recipe
from crafted import onnx_graph
from layouts import write_voc

# One worker writes the hostile files once for every case.
pytestmark = pytest.mark.xdist_group("cli_entry_files")


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def metadata_folder(root: Path, rows: str, name: str = "metadata.jsonl") -> Path:
    """root/images/0..3.png (the tiny colours) and a metadata file listing them with `rows`."""
    make_image_folder(root / "images", per_class=2, classes={"a": (200, 40, 40), "b": (40, 200, 40)})
    for i, png in enumerate(sorted((root / "images").rglob("*.png"))):
        png.rename(root / "images" / f"{i}.png")
    (root / name).write_text(rows)
    return root


@pytest.fixture(scope="module")
def bad(two_epoch_run, tmp_path_factory) -> dict:
    """Every hostile file of the cases, by name, and recipes that read them."""
    root = tmp_path_factory.mktemp("hostile_files")
    data = two_epoch_run.parent / "data"
    paths = {"root": root, "run": two_epoch_run, "image": data / "val" / "cat" / "0.png"}

    def recipe(name, **sections):
        spec = tiny_recipe_dict(data / "train", data / "val", train={"epochs": 1, "publish": False})
        for key, value in sections.items():
            spec[key].update(value)
        return write_recipe(root / f"{name}.yaml", spec)

    paths["tiny"] = recipe("tiny")
    jsonl = "".join(json.dumps({"file_name": f"images/{i}.png", "label": "ab"[i % 2]}) + "\n" for i in range(4))
    listed_twice = metadata_folder(root / "twice", jsonl + json.dumps({"file_name": "images/./2.png", "label": "a"}))
    paths["twice"] = recipe("twice", data={"val": {"type": "imagefolder", "path": str(listed_twice)}})
    newline = metadata_folder(
        root / "newline", 'file_name,label\nimages/0.png,a\nimages/1.png,"2\n3"\n', "metadata.csv"
    )
    paths["newline"] = recipe("newline", data={"val": {"type": "imagefolder", "path": str(newline)}})
    climbs = metadata_folder(root / "climbs" / "inner", jsonl + '{"file_name": "../outside.png", "label": "a"}\n')
    Image.new("RGB", (8, 8)).save(root / "climbs" / "outside.png")
    paths["climbs"] = recipe("climbs", data={"val": {"type": "imagefolder", "path": str(climbs)}})
    voc = write_voc(root / "VOC2007")
    listed = voc / "ImageSets" / "Main"
    (listed / "escape.txt").write_text((listed / "trainval.txt").read_text() + "../../escape\n")
    latin = voc / "Annotations" / "000001.xml"
    text = latin.read_text().replace("<pose>Left</pose>", "<pose>Caf\u00e9</pose>", 1)
    latin.write_bytes(('<?xml version="1.0" encoding="ISO-8859-1"?>\n' + text).encode("latin-1"))
    paths["voc"] = voc

    bomb = shutil.copytree(two_epoch_run / "best", root / "bomb_model")
    config = json.loads((bomb / "preprocessor_config.json").read_text())
    config.update(size={"shortest_edge": 60000}, crop_size={"height": 60000, "width": 60000})
    (bomb / "preprocessor_config.json").write_text(json.dumps(config))

    labels = shutil.copytree(two_epoch_run / "best", root / "four_labels")  # a head of 3, a 4th name
    config = json.loads((labels / "config.json").read_text())
    config["id2label"]["5"] = "wolf"
    (labels / "config.json").write_text(json.dumps(config))

    published = next((two_epoch_run / "publish").glob("*.safetensors"))
    metadata = json.dumps(safetensors_metadata(published))  # a 3-class tiny ResNet's config and preprocessing
    graphs = root / "graphs"
    graphs.mkdir()
    (root / "secret.bin").write_bytes(bytes(36))
    os.symlink(root / "secret.bin", graphs / "linked.bin")
    (graphs / "inside.bin").write_bytes(np.eye(3, dtype=np.float32).tobytes())
    for name, kwargs in {
        "good": {},
        "data_inside": {"external": "inside.bin"},
        "data_climbs_out": {"external": "../secret.bin"},
        "data_absolute": {"external": str(root / "secret.bin")},
        "data_linked_out": {"external": "linked.bin"},
        "two_outputs": {"outputs": 2},
        "two_outputs_unsaid": {"outputs": 2, "output_dims": ["N", "C"]},
        "unknown_op": {"op": "Frobnicate"},
    }.items():
        onnx_graph(graphs / f"{name}.onnx", metadata, **kwargs)
    onnx_graph(graphs / "not_json.onnx", "{not json")
    no_config = {key: value for key, value in json.loads(metadata).items() if key != "config"}
    onnx_graph(graphs / "no_config.onnx", json.dumps(no_config))
    paths["graphs"] = graphs

    zero = shutil.copytree(data / "train", root / "zero_byte")
    (zero / "cat" / "0.png").write_bytes(b"")
    paths["zero_byte"] = recipe(
        "zero_byte", data={"train": {"type": "imagefolder", "path": str(zero)}, "decode": "cpu"}
    )
    peers = {"batch_size": 16, "train_pipeline": [{"type": "Resize", "size": 18}, {"type": "RandomCrop", "size": 16}]}
    paths["peers"] = recipe("peers", data=peers, schedule={"type": "cosine"})
    return paths


def arguments(args, paths) -> list:
    return [arg.format(**paths) for arg in args]


# (case, command, arguments with {placeholders} from `bad`, words the error line names)
CASES = [
    ("metadata row listed twice", "hfcls-verify", ["{twice}"], ["metadata.jsonl line 5", "images/2.png", "line 3"]),
    ("metadata.csv label across lines", "hfcls-verify", ["{newline}"], ["metadata.csv line 4", "'2\\n3'"]),
    ("metadata file_name ../", "hfcls-verify", ["{climbs}"], ["line 5", "../outside.png", "leads out of"]),
    (
        "VOC image id ../",
        "hfcls-verify",
        ["{tiny}", "data.train={{type: voc, root: {voc}, split: escape}}", "data.val=null"],
        ["escape.txt line 4", "'../../escape'", "leads out of"],
    ),
    (
        "preprocessor resizing to 60000 x 60000",
        "hfcls-demo",
        ["{image}", "{root}/bomb_model"],
        ["bomb_model", "size 60000", "3,600,000,000 pixels", "data.max_image_pixels"],
    ),
    (
        "config.json naming a class its head lacks",
        "hfcls-demo",
        ["{image}", "{root}/four_labels"],
        ["four_labels/config.json", "num_labels 4", "[0, 1, 2, 5]"],
    ),
    (
        ".onnx data at ../ (hfcls-eval)",
        "hfcls-eval",
        ["{tiny}", "{graphs}/data_climbs_out.onnx", "--metrics", "accuracy"],
        ["data_climbs_out.onnx", "'../secret.bin'", "outside the graph's folder"],
    ),
    (
        ".onnx data at an absolute path (hfcls-demo)",
        "hfcls-demo",
        ["{image}", "{graphs}/data_absolute.onnx"],
        ["data_absolute.onnx", "secret.bin", "outside the graph's folder"],
    ),
    (
        ".onnx data through a link out",
        "hfcls-demo",
        ["{image}", "{graphs}/data_linked_out.onnx"],
        ["data_linked_out.onnx", "'linked.bin'", "outside the graph's folder"],
    ),
    (
        ".onnx with 2 outputs for 3 classes",
        "hfcls-demo",
        ["{image}", "{graphs}/two_outputs.onnx"],
        ["two_outputs.onnx", "[1, 2]", "names 3 classes"],
    ),
    (
        ".onnx whose output size shows only when run",
        "hfcls-eval",
        ["{tiny}", "{graphs}/two_outputs_unsaid.onnx", "--metrics", "accuracy"],
        ["two_outputs_unsaid.onnx", "(1, 2)", "for 3 classes"],
    ),
    (
        ".onnx with an operator onnxruntime lacks",
        "hfcls-demo",
        ["{image}", "{graphs}/unknown_op.onnx"],
        ["onnxruntime cannot load", "unknown_op.onnx", "Frobnicate"],
    ),
    (
        ".onnx metadata not JSON",
        "hfcls-demo",
        ["{image}", "{graphs}/not_json.onnx"],
        ["not_json.onnx", "metadata is not JSON"],
    ),
    (
        ".onnx metadata without config",
        "hfcls-demo",
        ["{image}", "{graphs}/no_config.onnx"],
        ["no_config.onnx", "model config"],
    ),
    (
        "data.decode=cpu, a zero-byte PNG",
        "hfcls-train",
        ["{zero_byte}", "--work-dir", "{root}/w_zero"],
        ["zero_byte/cat/0.png", "not an image file", "skip_bad_images"],
    ),
    (
        "bench --peers trainer, val smaller than a batch",
        "hfcls-bench",
        ["{peers}", "--peers", "trainer"],
        ["--peers", "data.val", "12 images", "batch_size 16"],
    ),
    ("bench --peers ''", "hfcls-bench", ["{tiny}", "--peers", ""], ["--peers", "at least one"]),
    ("bench --peers ,,,", "hfcls-bench", ["{tiny}", "--peers", ",,,"], ["--peers", "at least one"]),
]


@pytest.mark.parametrize("case, script, args, words", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_file_is_one_line_and_changes_nothing(bad, command, case, script, args, words):
    before = snapshot(bad["root"])
    user_error(command(script, *arguments(args, bad)), *words)
    after = snapshot(bad["root"])
    written = sorted(set(after) - set(before))
    assert all(name.startswith("w_zero/") for name in written), written  # only a new run's own log and recipe
    assert {name: after[name] for name in before} == before


def test_the_crafted_graph_itself_is_read(bad, command):
    """The cases above fail by their defect alone: the same graph without it predicts."""
    for graph in ("good", "data_inside"):  # data in a file beside the graph is what exporters write for large models
        out = ok(command("hfcls-demo", bad["image"], bad["graphs"] / f"{graph}.onnx", "--topk", "3"))
        assert {line.split()[1] for line in out.splitlines()[1:4]} == {"cat", "dog", "fox"}
    from hfcls import pipeline

    with pytest.raises(HfclsError, match="outside the graph's folder"):
        pipeline(bad["graphs"] / "data_climbs_out.onnx")


def test_a_latin1_voc_annotation_is_read(bad, command):
    out = ok(command("hfcls-verify", bad["tiny"], f"data.train={{type: voc, root: {bad['voc']}}}", "data.val=null"))
    assert "all 3 images in train decode" in out


def test_the_lock_never_follows_a_link_and_is_never_a_folder(bad, tmp_path, command):
    victim = tmp_path / "notes.txt"
    victim.write_text("mine")
    work = tmp_path / "w"
    work.mkdir()
    (work / "hfcls.lock").symlink_to(victim)
    user_error(command("hfcls-train", bad["tiny"], "--work-dir", work), "hfcls.lock is a symbolic link", "notes.txt")
    assert victim.read_text() == "mine" and sorted(p.name for p in work.iterdir()) == ["hfcls.lock"]
    (work / "hfcls.lock").unlink()
    (work / "hfcls.lock").mkdir()
    user_error(command("hfcls-train", bad["tiny"], "--work-dir", work), "hfcls.lock is a folder")
    victim_dir = tmp_path / "file_not_folder"
    victim_dir.write_text("mine")
    user_error(command("hfcls-train", bad["tiny"], "--work-dir", victim_dir), f"--work-dir {victim_dir} is a file")
    assert victim_dir.read_text() == "mine"


def test_eval_out_naming_a_folder_is_refused_before_the_evaluation(bad, tmp_path, command):
    out = tmp_path / "results.json"
    out.mkdir()
    user_error(
        command("hfcls-eval", bad["tiny"], bad["run"] / "best", "--out", out, "--overwrite"),
        f"--out {out} is a folder",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"] and not any(out.iterdir())


def test_a_torn_metrics_line_leaves_cards_and_plots_true_and_resume_repairs_it(bad, tmp_path, command):
    run = shutil.copytree(bad["run"], tmp_path / "run")
    metrics = run / "metrics.jsonl"
    whole = metrics.read_text()
    metrics.write_text(whole[: whole.rindex("val_accuracy_top1")])  # epoch 2's row cut short
    best = json.loads((run / "best" / "training_record.json").read_text())
    assert best["epoch"] == 2
    ok(command("hfcls-push", run / "best", "me/tiny", "--dry-run", "--out", tmp_path / "staged"))
    card = (tmp_path / "staged" / "README.md").read_text()
    top1 = best["metrics"]["accuracy_top1"]
    assert "Validation set, epoch 2 " in card and f"| accuracy_top1 | {top1:.4g} |" in card
    plotted = command("hfcls-plot", run, "--out", tmp_path / "curves.png")
    warnings = [line for line in (plotted.stdout + plotted.stderr).splitlines() if "is torn" in line]
    assert plotted.returncode == 0 and len(warnings) == 1 and "metrics.jsonl line 2" in warnings[0]
    assert "--resume" in warnings[0]
    ok(command("hfcls-train", run / "recipe.yaml", "--work-dir", run, "--resume"))
    lines = metrics.read_text().splitlines()
    state = json.loads((run / "checkpoints" / "epoch_2" / "hfcls_state.json").read_text())
    assert lines[0] == whole.splitlines()[0] and json.loads(lines[1]) == state["row"] and len(lines) == 2


def test_every_stop_names_the_way_forward_and_restart_keeps_the_old_run(bad, tmp_path, command):
    """A run killed before its first checkpoint left results and no checkpoint: --resume and a plain start
    both name --restart, which moves the earlier files aside and starts over."""
    run = shutil.copytree(bad["run"], tmp_path / "run", ignore=shutil.ignore_patterns("checkpoints"))
    before = snapshot(run)
    user_error(
        command("hfcls-train", bad["tiny"], "--work-dir", run, "--resume"), "no complete checkpoint", "--restart"
    )
    user_error(command("hfcls-train", bad["tiny"], "--work-dir", run), "but no checkpoint", "--restart")
    assert snapshot(run) == before
    ok(command("hfcls-train", bad["tiny"], "--work-dir", run, "--restart"))
    [aside] = (run / "previous").iterdir()
    assert snapshot(aside) == before  # every earlier file, moved whole
    assert (run / "checkpoints" / "epoch_1").is_dir() and len((run / "metrics.jsonl").read_text().splitlines()) == 1
