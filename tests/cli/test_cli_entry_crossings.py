"""hfcls.cli.cli_entry on hostile files of this round's features (issue #25, item 6): timm model folders, LoRA
checkpoints, distillation teachers, the app, gallery indexes and int8 graphs, each damaged, crafted or not
what it seems.

Each case runs the command's main([...]) in this process: exit status 2 and one `error:` line naming the
culprit and the fix, no traceback, nothing already there changed. The bad inputs the features' own tests
cover (a teacher of other classes, LoRA targets it cannot adapt, a stale or empty gallery, an int8 graph that
cannot be quantized, a busy port) are not repeated here; every output flag's refusal to replace is
tests/cli/test_outputs.py's.
"""

import json
import os
import shutil
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hfcls.artifacts.describe import safetensors_metadata

from commands import ok, user_error
from conftest import tiny_recipe_dict, write_recipe
from crafted import onnx_graph
from families import timm_folder

# One worker writes the hostile files once for every case.
pytestmark = pytest.mark.xdist_group("cli_entry_crossings")


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def edited(source: Path, folder: Path, name: str, change) -> Path:
    """A copy of the folder `source` whose JSON file `name` is changed in place by `change(dict)`."""
    folder = shutil.copytree(source, folder)
    content = json.loads((folder / name).read_text())
    change(content)
    (folder / name).write_text(json.dumps(content))
    return folder


@pytest.fixture(scope="module")
def bad(two_epoch_run, lora_run, tmp_path_factory) -> dict:
    """Every hostile file of the cases, by name, and recipes that read them."""
    root = tmp_path_factory.mktemp("hostile_crossings")
    data = two_epoch_run.parent / "data"
    paths = {"root": root, "image": data / "val" / "cat" / "0.png", "val": data / "val"}

    def recipe(name, **sections):
        spec = tiny_recipe_dict(data / "train", data / "val")
        for key, value in sections.items():
            spec[key].update(value)
        if "pretrained" in spec["model"]:
            del spec["model"]["config"]
        return write_recipe(root / f"{name}.yaml", spec)

    # timm: a folder as hfcls exports a timm model (label_names, its preprocessing), and the same lying
    timm_best = timm_folder(root / "timm_best", "resnet18", num_classes=3)
    config = json.loads((timm_best / "config.json").read_text())
    config.update(label_names=["cat", "dog", "fox"])
    (timm_best / "config.json").write_text(json.dumps(config))
    shutil.copy(two_epoch_run / "best" / "preprocessor_config.json", timm_best)
    edited(
        timm_best, root / "timm_four_names", "config.json", lambda c: c.update(label_names=[*c["label_names"], "wolf"])
    )
    edited(timm_best, root / "timm_unknown_net", "config.json", lambda c: c.update(architecture="resnet_18"))
    edited(timm_best, root / "timm_odd_args", "config.json", lambda c: c["model_args"].update(frobnicate=1))
    torn = shutil.copytree(timm_best, root / "timm_torn")
    (torn / "model.safetensors").write_bytes((torn / "model.safetensors").read_bytes()[:1000])
    paths["pretrained_torn"] = recipe("pretrained_torn", model={"pretrained": str(torn)})

    # LoRA: rank 4 said in the same number of bytes as rank 2 (the checkpoint's sizes still hold)
    paths["lora_recipe"], work = lora_run
    lora_checkpoint = work / "checkpoints" / "epoch_1"
    ranked = shutil.copytree(lora_checkpoint, root / "lora_rank_4")
    text = (ranked / "adapter_config.json").read_text()
    (ranked / "adapter_config.json").write_text(text.replace('"r": 2,', '"r": 4,'))
    grafted = shutil.copytree(two_epoch_run / "checkpoints" / "epoch_2", root / "plain_with_adapters")
    shutil.copy(lora_checkpoint / "adapter_config.json", grafted)
    paths["lora_run"] = shutil.copytree(work, root / "lora_run")

    # distillation teachers that are no teacher
    os.symlink(root / "loop_b", root / "loop_a")
    os.symlink(root / "loop_a", root / "loop_b")
    metadata = json.dumps(safetensors_metadata(next((two_epoch_run / "publish").glob("*.safetensors"))))
    onnx_graph(root / "graph.onnx", metadata)
    for name, teacher in {
        "loop": root / "loop_a",
        "timm_layout": root / "timm_hub",
        "onnx": root / "graph.onnx",
    }.items():
        paths[f"teacher_{name}"] = recipe(f"teacher_{name}", train={"distill": {"teacher": str(teacher)}})
    timm_folder(root / "timm_hub", "resnet18", num_classes=7)  # timm's own Hub layout: no preprocessor_config.json

    (root / "notes.txt").write_text("not an image")
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def arguments(args, paths) -> list:
    return [arg.format(**paths) for arg in args]


# (case, command, arguments with {placeholders} from `bad`, words the error line names)
CASES = [
    (
        "timm folder naming 4 classes for a head of 3",
        "hfcls-demo",
        ["{image}", "{root}/timm_four_names"],
        ["timm_four_names/config.json", "num_classes 3 but names 4 classes (label_names)", "export it again"],
    ),
    (
        "timm folder of an architecture timm lacks",
        "hfcls-demo",
        ["{image}", "{root}/timm_unknown_net"],
        ["timm_unknown_net/config.json", "no architecture 'resnet_18'", 'did you mean "resnet18"', "pip install -U"],
    ),
    (
        "timm folder whose model_args the constructor refuses",
        "hfcls-demo",
        ["{image}", "{root}/timm_odd_args"],
        ["timm_odd_args/config.json", "resnet18 cannot be built", "frobnicate", "export it again"],
    ),
    (
        "timm model.pretrained with torn weights",
        "hfcls-train",
        ["{pretrained_torn}", "--work-dir", "{root}/w_torn"],
        ["model.pretrained", "timm_torn", "cannot be read", "download or save it again"],
    ),
    (
        "timm's own Hub layout as an artifact",
        "hfcls-demo",
        ["{image}", "{root}/timm_hub"],
        ["timm_hub has no preprocessor_config.json", "export"],
    ),
    (
        "LoRA checkpoint whose adapter_config says another rank",
        "hfcls-demo",
        ["{image}", "{root}/lora_rank_4"],
        ["lora_rank_4", "do not match its adapter_config.json", "size mismatch", "damaged"],
    ),
    (
        "plain checkpoint given a LoRA adapter_config",
        "hfcls-demo",
        ["{image}", "{root}/plain_with_adapters"],
        ["plain_with_adapters is damaged", "adapter_config.json, which its save did not write"],
    ),
    (
        "LoRA run resumed with another rank",
        "hfcls-train",
        ["{lora_recipe}", "--work-dir", "{lora_run}", "--resume", "model.lora.r=4", "train.epochs=3"],
        ["epoch_2 was trained with model.lora {'r': 2", "this run has {'r': 4", "resume with the model.lora it had"],
    ),
    (
        "teacher a symbolic link loop",
        "hfcls-train",
        ["{teacher_loop}", "--work-dir", "{root}/w_loop"],
        ["train.distill.teacher", "loop_a is a symbolic link that leads nowhere", "point it at"],
    ),
    (
        "teacher in timm's own Hub layout",
        "hfcls-train",
        ["{teacher_timm_layout}", "--work-dir", "{root}/w_timm_layout"],
        ["train.distill.teacher", "timm_hub has no preprocessor_config.json"],
    ),
    (
        "teacher an .onnx graph",
        "hfcls-train",
        ["{teacher_onnx}", "--work-dir", "{root}/w_onnx"],
        ["train.distill.teacher", "graph.onnx is an ONNX graph, not PyTorch weights", "checkpoint or folder"],
    ),
    (
        "app given a URL",
        "hfcls-app",
        ["https://example.com/model", "--port", "{port}"],
        ["https://example.com/model is an address", "download it"],
    ),
    ("app given a data folder", "hfcls-app", ["{val}", "--port", "{port}"], ["val is not a model folder", "pass"]),
    (
        "app given an image",
        "hfcls-app",
        ["{image}", "--port", "{port}"],
        ["0.png is not a folder or a .safetensors file", "pass"],
    ),
]


@pytest.mark.parametrize("case, script, args, words", CASES, ids=[c[0] for c in CASES])
def test_a_hostile_file_is_one_line_and_changes_nothing(bad, command, case, script, args, words):
    before = snapshot(bad["root"])
    user_error(command(script, *arguments(args, {**bad, "port": free_port()})), *words)
    after = snapshot(bad["root"])
    written = sorted(set(after) - set(before))
    assert all(name.startswith("w_") for name in written), written  # only a new run's own log and recipe
    for name, content in before.items():  # a run's log may say it was refused, below what it held
        assert after[name] == content or (name.endswith("log.txt") and after[name].startswith(content)), name


def test_the_crafted_files_are_read_without_their_defect(bad, command):
    """The cases above fail by their defect alone: the timm folder they were made from predicts."""
    out = ok(command("hfcls-demo", bad["image"], bad["root"] / "timm_best", "--topk", "3"))
    assert {line.split()[1] for line in out.splitlines()[1:4]} == {"cat", "dog", "fox"}


# ----------------------------------------------------------------------------- gallery indexes


def torn_features(index: Path):
    features = index / "features.safetensors"
    features.write_bytes(features.read_bytes()[:100])


def fewer_rows(index: Path):
    tensors = load_file(index / "features.safetensors")
    save_file({**tensors, "features": tensors["features"][:3].contiguous()}, index / "features.safetensors")


def other_width(index: Path):
    tensors = load_file(index / "features.safetensors")
    save_file({**tensors, "features": torch.zeros(len(tensors["features"]), 7)}, index / "features.safetensors")


def rows_past_the_listing(index: Path):
    built = json.loads((index / "index.json").read_text())
    (index / "index.json").write_text(json.dumps({**built, "indexed": [*built["indexed"], 99]}))


def images_not_rows(index: Path):
    built = json.loads((index / "index.json").read_text())
    (index / "index.json").write_text(json.dumps({**built, "images": "images"}))


def fewer_class_names(index: Path):
    built = json.loads((index / "index.json").read_text())
    (index / "index.json").write_text(json.dumps({**built, "class_names": ["cat"]}))


@pytest.fixture(scope="module")
def indexed(two_epoch_run, tmp_path_factory, bad) -> dict:
    """A copy of best/ with two gallery indexes beside it (the val folder, and the recipe's labelled val split)."""
    from commands import run_in_process

    class Quiet:
        def readouterr(self):
            return "", ""

    root = tmp_path_factory.mktemp("indexed")
    best = shutil.copytree(two_epoch_run / "best", root / "best")
    galleries = {"folder": str(bad["val"]), "split": f"{two_epoch_run.parent / 'tiny.yaml'}:val"}
    for gallery in galleries.values():
        ok(run_in_process("hfcls-retrieve", [bad["image"], best, "--gallery", gallery, "--topk", "2"], Quiet()))
    return {"root": root, "best": best, "galleries": galleries}


GALLERY_CASES = [
    (torn_features, "folder", ["features.safetensors", "not safetensors"]),
    (fewer_rows, "folder", ["features of shape (3, 16) for 12 indexed images"]),
    (other_width, "folder", ["holds features 7 wide, the model gives 16", "built by another model"]),
    (rows_past_the_listing, "folder", ["names indexed rows that are not rows of its 12 images"]),
    (images_not_rows, "folder", ["lists no [name, size, stamp] rows"]),
    (fewer_class_names, "split", ["its labels (shape (12,)) do not fit its 12 images and its class names"]),
]


@pytest.mark.parametrize(
    "damage, gallery, words", GALLERY_CASES, ids=[f"{c[0].__name__} ({c[1]})" for c in GALLERY_CASES]
)
def test_a_damaged_gallery_index_is_one_line_naming_the_rebuild(
    indexed, bad, tmp_path, command, damage, gallery, words
):
    best = shutil.copytree(indexed["best"], tmp_path / "best")
    spec = indexed["galleries"][gallery]
    [index] = [
        p
        for p in shutil.copytree(indexed["root"] / "best.gallery", tmp_path / "best.gallery").iterdir()
        if (p / "index.json").is_file() and json.loads((p / "index.json").read_text())["gallery"] == spec
    ]
    damage(index)
    before = snapshot(tmp_path)
    line = user_error(
        command("hfcls-retrieve", bad["image"], best, "--gallery", spec), "gallery index", index.name, *words
    )
    assert line.endswith("pass --overwrite to rebuild it") or "--overwrite" in line, line
    assert snapshot(tmp_path) == before


def test_a_linked_gallery_index_is_replaced_never_written_through(indexed, bad, tmp_path, command):
    """An index folder that is a symbolic link is read like any index (it is checked against the model and the
    gallery), and --overwrite puts a folder of its own in its place: the link's target is left as it was."""
    best = shutil.copytree(indexed["best"], tmp_path / "best")
    elsewhere = shutil.copytree(indexed["root"] / "best.gallery", tmp_path / "elsewhere")
    (tmp_path / "best.gallery").mkdir()
    for index in elsewhere.iterdir():
        (tmp_path / "best.gallery" / index.name).symlink_to(index)
    target = snapshot(elsewhere)
    read = ok(command("hfcls-retrieve", bad["image"], best, "--gallery", indexed["galleries"]["folder"]))
    rebuilt = ok(
        command("hfcls-retrieve", bad["image"], best, "--gallery", indexed["galleries"]["folder"], "--overwrite")
    )
    matches = [[line for line in out.splitlines() if " INFO " not in line] for out in (read, rebuilt)]
    assert matches[0] == matches[1] and len(matches[0]) == 6 and snapshot(elsewhere) == target
    assert any(p.is_dir() and not p.is_symlink() for p in (tmp_path / "best.gallery").iterdir())


# ----------------------------------------------------------------------------- int8 graphs


def int8_variant(source: Path, out: Path, change) -> Path:
    import onnx

    model = onnx.load(str(source))
    change(model)
    onnx.save(model, str(out))
    return out


def test_an_int8_graph_altered_after_export_is_one_line(digits_int8, bad, tmp_path, command):
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    _, graph, _ = digits_int8
    [prop] = [p for p in onnx.load(str(graph)).metadata_props if p.key == "hfcls"]
    metadata = json.loads(prop.value)

    def more_names(model):
        [own] = [p for p in model.metadata_props if p.key == "hfcls"]
        own.value = json.dumps({**metadata, "class_names": [*metadata["class_names"], "eleven"]})

    renamed = int8_variant(graph, tmp_path / "renamed.onnx", more_names)
    user_error(command("hfcls-demo", bad["image"], renamed), "renamed.onnx", "names 11 classes")

    def data_beside(model):
        convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)

    def data_outside(model):  # onnx.save itself refuses to write a location with '..'
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                entry.value = "../weights.bin" if entry.key == "location" else entry.value

    (tmp_path / "inner").mkdir()
    outside = int8_variant(graph, tmp_path / "inner" / "outside.onnx", data_beside)
    (tmp_path / "inner" / "weights.bin").rename(tmp_path / "weights.bin")  # the real data, one folder up
    model = onnx.load(str(outside), load_external_data=False)
    data_outside(model)
    onnx.save(model, str(outside))
    user_error(
        command("hfcls-demo", bad["image"], outside), "outside.onnx", "'../weights.bin'", "outside the graph's folder"
    )
    user_error(
        command("hfcls-export", outside, tmp_path / "again.onnx", "--quantize", "int8"),
        "outside.onnx",
        "outside the graph's folder",
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["inner", "outside.onnx", "renamed.onnx", "weights.bin"]


def test_int8_calibration_images_that_are_no_images_are_named(two_epoch_run, bad, tmp_path, command):
    images = shutil.copytree(bad["val"], tmp_path / "images")
    shutil.copy(bad["root"] / "notes.txt", images / "cat" / "notes.txt")
    user_error(
        command(
            "hfcls-export", two_epoch_run / "best", tmp_path / "int8.onnx", "--quantize", "int8", "--images", images
        ),
        "--images",
        "notes.txt is not an image",
        "pass only images",
    )
    assert not (tmp_path / "int8.onnx").exists()
