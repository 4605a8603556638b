"""Retrieval (hfcls.pipeline(...).retrieve) and its gallery index (hfcls.artifacts.gallery): matches ranked by
the cosine of the head's features, an index built once beside the model and reused, refused when the model,
its preprocessing or the gallery's images changed and replaced only with overwrite; a recipe split as a
labelled gallery; a gallery that holds no image is one line."""

import json
import logging
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import hfcls
from hfcls.artifacts.gallery import INDEX_FILE
from hfcls.errors import HfclsError

from conftest import make_image_folder


@pytest.fixture
def setup(two_epoch_run, tmp_path):
    """(classifier of a copy of the run's best/, gallery folder, two query images): the index goes beside the copy."""
    shutil.copytree(two_epoch_run / "best", tmp_path / "best")
    gallery = make_image_folder(tmp_path / "gallery", per_class=5, seed=3)
    queries = [str(p) for p in sorted((two_epoch_run.parent / "data" / "val" / "dog").iterdir())[:2]]
    return hfcls.pipeline(tmp_path / "best", device="cpu"), gallery, queries


def the_index(tmp_path):
    [folder] = (tmp_path / "best.gallery").iterdir()
    return folder


def test_matches_are_the_gallery_ranked_by_feature_cosine(setup):
    classifier, gallery, queries = setup
    found = classifier.retrieve(queries, str(gallery), top_k=4)
    files = sorted(str(p) for p in gallery.rglob("*.png"))
    similarity = (
        torch.nn.functional.normalize(classifier.features(queries))
        @ torch.nn.functional.normalize(classifier.features(files)).T
    )
    for matches, row in zip(found, similarity):
        best = row.argsort(descending=True)[:4]
        assert [m["image"] for m in matches] == [files[i] for i in best]
        assert [m["similarity"] for m in matches] == pytest.approx(row[best].tolist(), abs=1e-5)
    alone = classifier.retrieve(queries[0], str(gallery), top_k=4)  # one image: its list alone
    assert [m["image"] for m in alone] == [m["image"] for m in found[0]]


def test_the_index_is_built_once_beside_the_model_and_reused(setup, tmp_path, caplog):
    classifier, gallery, queries = setup
    with caplog.at_level(logging.INFO, "hfcls.artifacts.gallery"):
        first = classifier.retrieve(queries, str(gallery))
        index = the_index(tmp_path)
        stamp = (index / INDEX_FILE).stat().st_mtime_ns
        again = hfcls.pipeline(tmp_path / "best", device="cpu").retrieve(queries, str(gallery))
    assert caplog.text.count("indexing gallery") == 1 and (index / INDEX_FILE).stat().st_mtime_ns == stamp
    assert again == first
    built = json.loads((index / INDEX_FILE).read_text())
    assert built["gallery"] == str(gallery) and len(built["images"]) == 15
    assert load_file(index / "features.safetensors")["features"].shape == (15, 16)


def test_a_changed_gallery_is_refused_and_rebuilt_only_with_overwrite(setup, tmp_path):
    classifier, gallery, queries = setup
    classifier.retrieve(queries, str(gallery))
    index = the_index(tmp_path)
    before = (index / INDEX_FILE).read_bytes()
    shutil.copy(gallery / "cat" / "0.png", gallery / "cat" / "new.png")
    Image.new("RGB", (16, 16), "white").save(gallery / "dog" / "1.png")
    with pytest.raises(HfclsError) as error:
        classifier.retrieve(queries, str(gallery))
    assert f"gallery index {index} is stale: since it was built 1 images were added, 0 removed and 1 changed" in str(
        error.value
    )
    assert "pass overwrite=True (hfcls-retrieve --overwrite) to rebuild it" in str(error.value)
    assert (index / INDEX_FILE).read_bytes() == before  # nothing replaced
    found = classifier.retrieve(queries, str(gallery), top_k=16, overwrite=True)
    assert len(found[0]) == 16 and len(json.loads((index / INDEX_FILE).read_text())["images"]) == 16


def test_other_weights_or_preprocessing_make_the_index_stale(setup, tmp_path):
    classifier, gallery, queries = setup
    classifier.retrieve(queries, str(gallery))
    weights = load_file(tmp_path / "best" / "model.safetensors")
    save_file(
        {key: value * 1.01 if value.is_floating_point() else value for key, value in weights.items()},
        tmp_path / "best" / "model.safetensors",
    )
    with pytest.raises(HfclsError, match="is stale: it was built with other weights"):
        hfcls.pipeline(tmp_path / "best", device="cpu").retrieve(queries, str(gallery))
    classifier.processor_config = {**classifier.processor_config, "image_std": [0.3, 0.3, 0.3]}
    hfcls.pipeline(tmp_path / "best", device="cpu").retrieve(queries, str(gallery), overwrite=True)
    with pytest.raises(HfclsError, match="is stale: it was built with other preprocessing"):
        classifier.retrieve(queries, str(gallery))


def test_a_recipe_split_is_a_labelled_gallery(setup, two_epoch_run):
    classifier, _, queries = setup
    matches = classifier.retrieve(queries[0], f"{two_epoch_run.parent / 'tiny.yaml'}:train", top_k=3)
    assert [m["label"] for m in matches] == ["dog"] * 3
    assert all(m["image"].startswith(str(two_epoch_run.parent / "data" / "train" / "dog")) for m in matches)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root.mkdir(), "the folder holds no image files; put the images to search in it"),
        (lambda root: None, "no such folder; pass a folder of images or RECIPE.yaml:split"),
        (
            lambda root: (root.mkdir(), (root / "notes.txt").write_text("no picture")),
            "none of its 1 files could be read as an image",
        ),
    ],
)
def test_a_gallery_without_images_is_one_line(setup, tmp_path, make, message):
    classifier, _, queries = setup
    make(tmp_path / "empty")
    with pytest.raises(HfclsError, match=message) as error:
        classifier.retrieve(queries, str(tmp_path / "empty"))
    assert error.value.param == "gallery" and not (tmp_path / "best.gallery").exists()
