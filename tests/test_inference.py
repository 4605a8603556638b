"""hfcls.pipeline and hfcls-demo's library side: agreement with transformers.pipeline and evaluate_checkpoint,
inputs, errors."""

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
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.evaluation.results import read_results
from hfcls.inference import classify_images, expand_images
from hfcls.recipe import load_recipe

from conftest import REPO


def by_label(predictions):
    return {p["label"]: p["score"] for p in predictions}


def test_pipeline_transformers_and_eval_agree_on_every_prediction(trained_digits, classifier, val_files, tmp_path):
    recipe, work = trained_digits
    ours = classifier(val_files, top_k=10)
    reference = transformers.pipeline("image-classification", model=str(work / "best"), device="cpu")
    theirs = reference(val_files, top_k=10, batch_size=64)
    out = tmp_path / "eval.json"
    evaluate_checkpoint(EvalRequest(load_recipe(recipe), work / "best", out=out, out_items=("pred", "class_scores")))
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
    bf16 = hfcls.pipeline(
        work / "checkpoints" / "epoch_1",
        device="cpu",
        batch_size=64,
        recipe=load_recipe(recipe, ["train.mixed_precision=bf16", "train.channels_last=true"]),
    )
    assert bf16.inputs.autocast_dtype == torch.bfloat16 and bf16.inputs.channels_last
    files = val_files[::3]
    got, want = bf16(files, top_k=10), classifier(files, top_k=10)
    assert np.mean([a[0]["label"] == b[0]["label"] for a, b in zip(got, want)]) > 0.97
    assert 0 < max(abs(by_label(a)[k] - v) for a, b in zip(got, want) for k, v in by_label(b).items()) < 0.1


def test_undecodable_image_is_named(classifier, val_files, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(HfclsError, match="cannot decode image .*broken.png"):
        classifier([val_files[0], str(bad)])


def test_classify_images_reads_a_folder_and_skips_undecodable_files(trained_digits, digits_dir, tmp_path, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for image in sorted((digits_dir / "val" / "7").iterdir())[:4]:
        (folder / image.name).write_bytes(image.read_bytes())
    (folder / "broken.png").write_bytes(b"not a png")
    results = classify_images(str(folder), trained_digits[1] / "best", top_k=2, num_workers=0, draw_to=tmp_path / "vis")
    images = sorted(str(p) for p in folder.iterdir() if p.name != "broken.png")
    assert [file for file, _ in results] == images
    assert all(len(predictions) == 2 for _, predictions in results)
    assert "broken.png" in caplog.text and "skipped" in caplog.text
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == sorted(Path(p).stem + ".png" for p in images)


def test_expand_images_takes_a_file_a_folder_or_a_glob(tmp_path):
    for name in ("b.png", "a.png", ".hidden", "sub/c.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert expand_images(str(tmp_path / "a.png")) == ([str(tmp_path / "a.png")], False)
    assert expand_images(str(tmp_path)) == ([str(tmp_path / n) for n in ("a.png", "b.png", "sub/c.jpg")], True)
    assert expand_images(str(tmp_path / "*.png")) == ([str(tmp_path / "a.png"), str(tmp_path / "b.png")], True)
    with pytest.raises(HfclsError, match="no image files at nowhere/\\*.png"):
        expand_images("nowhere/*.png")
    with pytest.raises(HfclsError, match="top_k must be at least 1"):
        classify_images(str(tmp_path / "a.png"), tmp_path, top_k=0)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"top_k": 0}, "top_k must be at least 1, got 0"),
        ({"threshold": 1.5}, "threshold is a sigmoid score between 0 and 1, got 1.5"),
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"num_workers": -1}, "num_workers must be 0 or more, got -1"),
        ({"device": "foo"}, "device foo: not a device torch knows"),
        ({"tta": "flips"}, "tta: unknown view 'flips'"),
    ],
)
def test_bad_arguments_name_their_parameter_before_any_loading(tmp_path, arguments, message):
    with pytest.raises(HfclsError) as error:
        hfcls.pipeline(tmp_path / "nothing here", **arguments)
    assert str(error.value).startswith(message) and error.value.param == next(iter(arguments))


def test_import_hfcls_leaves_torch_unloaded():
    assert hfcls.pipeline.__module__ == "hfcls.inference"  # exported, imported on first use
    code = "import sys, hfcls; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
