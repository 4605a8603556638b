"""transformers.pipeline on the folder a run exports predicts what hfcls-eval and hfcls-demo predict:
the same top-k labels and scores within 1e-4, for every transformers family and for timm models, each
fine-tuned from a "pretrained" folder of another class count, trained and evaluated at 32 px (not 224).

Whatever processor class transformers.pipeline builds (a BitImageProcessor from preprocessor_config.json,
or a TimmWrapperImageProcessor from config.json's pretrained_cfg), it must preprocess as hfcls evaluated:
digits of 8 x 8 pixels, resized to 40 and center-cropped to 32 with bilinear interpolation, normalised
with the recipe's mean 0.5 and std 0.25 (not ImageNet's, which a forgotten setting would fall back to).
Pillow (timm's processor) and torchvision (hfcls) upscale by a whole factor to the same pixels; at other
scales a pixel in a few hundred differs by one grey level, which moves scores by about 1e-4.
"""

import json

import pytest
import transformers

import hfcls
from hfcls.api import train
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.evaluation.results import read_results
from hfcls.recipe import recipe_from_dict

from conftest import DIGIT_CLASSES, make_digit_folder, shared_once, tiny_recipe_dict
from families import NATIVE, native_folder, timm_folder

pytestmark = pytest.mark.xdist_group("family_parity")

CASES = [*NATIVE, "timm/resnet18", "timm/vit_tiny_patch16_224"]
EVAL = [{"type": "Resize", "size": 40}, {"type": "CenterCrop", "size": 32}]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{case: the best/ folder of a one-step fine-tune}, each run once (shared between workers)."""

    def build(root):
        train_dir = make_digit_folder(root / "data" / "train", per_class=4)
        val_dir = make_digit_folder(root / "data" / "val", per_class=3, offset=10)
        for case in CASES:
            source = root / "pretrained" / case.replace("/", "-")
            if case.startswith("timm/"):
                timm_folder(source, case.removeprefix("timm/"), num_classes=5)
            else:
                native_folder(source, case, ["a", "b", "c", "d", "e"])
            recipe = tiny_recipe_dict(
                train_dir,
                val_dir,
                model={"pretrained": str(source)},
                data={"batch_size": 12, "train_pipeline": EVAL, "eval_pipeline": EVAL},
            )
            del recipe["model"]["config"]
            train(recipe_from_dict(recipe), root / "runs" / source.name)

    root = shared_once(tmp_path_factory, "family_parity", build)
    return {case: root / "runs" / case.replace("/", "-") / "best" for case in CASES}, root / "data" / "val"


def scores_by_label(predictions) -> dict:
    return {p["label"]: p["score"] for p in predictions}


@pytest.mark.parametrize("case", CASES)
def test_transformers_pipeline_predicts_what_hfcls_evaluated(trained, case, tmp_path):
    runs, val_dir = trained
    best = runs[case]
    files = sorted(str(p) for p in val_dir.rglob("*.png"))
    reference = transformers.pipeline("image-classification", model=str(best), device="cpu")
    expected_processor = "TimmWrapperImageProcessor" if case.startswith("timm/") else "BitImageProcessor"
    assert type(reference.image_processor).__name__.removesuffix("Fast") == expected_processor
    theirs = reference(files, top_k=3)
    demo = hfcls.pipeline(best, device="cpu")(files, top_k=3)
    recipe = recipe_from_dict(json.loads(json.dumps(_run_recipe(best))))
    out = tmp_path / "eval.json"
    evaluate_checkpoint(EvalRequest(recipe, best, out=out, out_items=("pred", "class_scores")))
    evaluated = {record["image"]: record for record in read_results(out)["predictions"]}
    assert len(theirs) == len(demo) == len(evaluated) == 9
    names = sorted(DIGIT_CLASSES)  # class ids in the image folder's order
    for file, hf, ours in zip(files, theirs, demo):
        assert [p["label"] for p in hf] == [p["label"] for p in ours]
        assert [p["score"] for p in hf] == pytest.approx([p["score"] for p in ours], abs=1e-4)
        row = evaluated[file]
        assert row["pred_class"] == hf[0]["label"]
        for label, score in scores_by_label(hf).items():
            assert score == pytest.approx(row["class_scores"][names.index(label)], abs=1e-4)
    # a model that tells the images apart, not one constant answer
    assert len({round(p[0]["score"], 6) for p in theirs}) > 1


def _run_recipe(best):
    import yaml

    return yaml.safe_load((best.parent / "recipe.yaml").read_text())
