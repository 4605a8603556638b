"""hfcls-verify's library side: every image of every split decoded, bad files and out-of-range labels listed."""

from hfcls.data.verify import check_row, verify_datasets
from hfcls.recipe import load_recipe, recipe_from_dict

from conftest import make_image_folder, tiny_recipe_dict
from layouts import bad_splits_recipe, isolated_cache, save_numbered  # noqa: F401


def test_verify_passes_clean_data(tiny_recipe):
    assert verify_datasets(load_recipe(tiny_recipe)) == ([], 36, ["train", "val"])


def test_verify_lists_unreadable_files_and_out_of_range_labels(tmp_path):
    recipe, val = bad_splits_recipe(tmp_path)
    problems, total, splits = verify_datasets(load_recipe(recipe), workers=1)
    assert (total, splits) == (9, ["train", "val"]) and len(problems) == 2
    assert problems[0] == "train: row 1 (image bytes): label 7 is outside [0, 3)"
    assert problems[1].startswith(f"val: cannot decode {val / 'dog' / '1.png'}: ")


def test_an_unlabeled_row_is_no_problem(tmp_path):
    make_image_folder(tmp_path, per_class=1)
    row = {"image": {"path": str(tmp_path / "cat" / "0.png"), "bytes": None}, "label": -1}
    assert check_row(row, 0, to_rgb=True, num_classes=3) == ""
    assert check_row({**row, "label": 3}, 0, to_rgb=True, num_classes=3).endswith("label 3 is outside [0, 3)")


def test_verify_reads_streams(tmp_path):
    save_numbered(tmp_path / "saved", count=5)
    val = make_image_folder(tmp_path / "val", per_class=1)
    train_spec = {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True}
    recipe = recipe_from_dict(tiny_recipe_dict(None, val, data={"train": train_spec, "steps_per_epoch": 1}))
    assert verify_datasets(recipe) == ([], 8, ["train", "val"])


def test_verify_checks_every_label_of_a_multi_label_row(tmp_path, multilabel_data):
    make_image_folder(tmp_path, per_class=1)
    row = {"image": {"path": str(tmp_path / "cat" / "0.png"), "bytes": None}, "label": [0, 2]}
    assert check_row(row, 0, to_rgb=True, num_classes=3) == ""
    assert check_row({**row, "label": [1, 3]}, 0, to_rgb=True, num_classes=3).endswith("label 3 is outside [0, 3)")
    recipe = recipe_from_dict(tiny_recipe_dict(*multilabel_data))
    assert verify_datasets(recipe) == ([], 36, ["train", "val"])
