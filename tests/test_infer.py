"""hfcls.pipeline and hfcls-demo: agreement with transformers.pipeline and hfcls-eval, inputs, errors."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

import hfcls
from hfcls.errors import HfclsError
from hfcls.eval import cli as eval_cli
from hfcls.eval import read_results
from hfcls.infer import cli as demo_cli
from hfcls.infer import eval_transform_from_preprocessor
from hfcls.recipe import load_recipe

from conftest import REPO


@pytest.fixture(scope="module")
def val_files(digits_dir):
    """The val images in hfcls-eval's dataset order (class folders, then file names)."""
    return [str(p) for c in range(10) for p in sorted((digits_dir / "val" / str(c)).iterdir())]


@pytest.fixture(scope="module")
def classifier(trained_digits):
    return hfcls.pipeline(trained_digits[1] / "best", device="cpu", batch_size=64)


def by_label(predictions):
    return {p["label"]: p["score"] for p in predictions}


def test_pipeline_transformers_and_eval_agree_on_every_prediction(trained_digits, classifier, val_files, tmp_path):
    recipe, work = trained_digits
    ours = classifier(val_files, top_k=10)
    reference = transformers.pipeline("image-classification", model=str(work / "best"), device="cpu")
    theirs = reference(val_files, top_k=10, batch_size=64)
    out = tmp_path / "eval.json"
    eval_cli([str(recipe), str(work / "best"), "--out", str(out), "--out-items", "pred", "class_scores"])
    evaluated = read_results(out)["predictions"]
    assert len(ours) == len(theirs) == len(evaluated) == 360
    for mine, hf, ev in zip(ours, theirs, evaluated):
        assert mine[0]["label"] == hf[0]["label"] == ev["pred_class"]
        mine_scores, hf_scores = by_label(mine), by_label(hf)
        for label, score in mine_scores.items():
            assert score == pytest.approx(hf_scores[label], abs=1e-5)
            assert score == pytest.approx(ev["class_scores"][int(label)], abs=1e-5)
    # a trained model, not a constant one
    assert len({p[0]["label"] for p in ours}) == 10


def test_paths_pil_images_arrays_and_lists_give_the_same_answer(classifier, val_files):
    path = val_files[100]
    expected = classifier(path)
    assert [p["label"] for p in expected] == [p["label"] for p in classifier(path, top_k=10)[:5]]
    assert len(expected) == 5 and expected[0]["score"] >= expected[1]["score"]
    pil = Image.open(path)
    for image in (pil, np.asarray(pil), Path(path)):
        got = classifier(image)
        assert [p["label"] for p in got] == [p["label"] for p in expected]
        assert [p["score"] for p in got] == pytest.approx([p["score"] for p in expected], abs=1e-6)
    batch = classifier([path, pil, val_files[0]], top_k=2)
    assert len(batch) == 3 and all(len(p) == 2 for p in batch)
    assert [p["label"] for p in batch[1]] == [p["label"] for p in batch[0]]
    assert [p["score"] for p in batch[1]] == pytest.approx([p["score"] for p in batch[0]], abs=1e-6)
    assert batch[2][0]["label"] == classifier(val_files[0])[0]["label"]


def test_weights_only_checkpoints_find_their_recipe(trained_digits, classifier, val_files):
    recipe, work = trained_digits
    files = val_files[::30]
    expected = classifier(files)
    from_epoch = hfcls.pipeline(work / "checkpoints" / "epoch_1", device="cpu")  # work/recipe.yaml
    from_file = hfcls.pipeline(work / "best" / "model.safetensors", recipe=recipe, device="cpu")
    for other in (from_epoch, from_file):
        for got, want in zip(other(files), expected):
            assert [p["label"] for p in got] == [p["label"] for p in want]
            assert [p["score"] for p in got] == pytest.approx([p["score"] for p in want], abs=1e-6)


def test_recipe_mixed_precision_and_channels_last_apply(trained_digits, classifier, val_files):
    recipe, work = trained_digits
    bf16 = hfcls.pipeline(work / "checkpoints" / "epoch_1", device="cpu", batch_size=64,
                          recipe=load_recipe(recipe, ["train.mixed_precision=bf16", "train.channels_last=true"]))
    assert bf16.autocast_dtype == torch.bfloat16 and bf16.channels_last
    files = val_files[::3]
    got, want = bf16(files, top_k=10), classifier(files, top_k=10)
    assert np.mean([a[0]["label"] == b[0]["label"] for a, b in zip(got, want)]) > 0.97
    assert 0 < max(abs(by_label(a)[k] - v) for a, b in zip(got, want) for k, v in by_label(b).items()) < 0.1


def test_preprocessing_is_read_back_from_the_export(trained_digits):
    specs, mean, std = eval_transform_from_preprocessor(trained_digits[1] / "best" / "preprocessor_config.json")
    assert specs == [{"type": "Resize", "size": 16, "interpolation": "bilinear"}]
    assert (mean, std) == ([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])


def test_undecodable_image_is_named(classifier, val_files, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(HfclsError, match="cannot decode image .*broken.png"):
        classifier([val_files[0], str(bad)])


def test_demo_prints_topk_and_draws_the_prediction(trained_digits, classifier, val_files, tmp_path, capsys):
    out = tmp_path / "vis" / "one.png"
    demo_cli([val_files[5], str(trained_digits[1] / "best"), "--topk", "3", "--out", str(out), "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    expected = classifier(val_files[5], top_k=3)
    assert lines[0] == val_files[5]
    assert lines[1:4] == [f"  {i}. {p['label']}  {p['score']:.4f}" for i, p in enumerate(expected, 1)]
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_demo_on_a_folder_skips_undecodable_files(trained_digits, digits_dir, tmp_path, capsys, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for image in sorted((digits_dir / "val" / "7").iterdir())[:4]:
        shutil.copy(image, folder)
    (folder / "broken.png").write_bytes(b"not a png")
    demo_cli([str(folder), str(trained_digits[1] / "best"), "--topk", "1", "--num-workers", "0",
              "--out", str(tmp_path / "vis")])
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(folder))]
    images = sorted(p for p in folder.iterdir() if p.name != "broken.png")
    assert printed == [str(p) for p in images] and len(images) == 4
    assert "broken.png" in caplog.text and "skipped" in caplog.text
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == [p.stem + ".png" for p in images]


@pytest.mark.parametrize("image, message", [
    ("nowhere/*.png", "no image files at nowhere/*.png"),
    ("broken", "cannot decode image"),
])
def test_demo_user_errors(trained_digits, tmp_path, capsys, image, message):
    if image == "broken":
        image = tmp_path / "broken.jpg"
        image.write_bytes(b"junk")
    with pytest.raises(SystemExit) as exit_info:
        demo_cli([str(image), str(trained_digits[1] / "best")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_import_hfcls_leaves_torch_unloaded():
    assert hfcls.pipeline.__module__ == "hfcls.infer"  # exported, imported on first use
    code = "import sys, hfcls; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
