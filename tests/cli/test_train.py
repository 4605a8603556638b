"""hfcls-train's command line: overrides, --cfg-options, --seed, --work-dir, --resume, --no-validate, and
user errors as one line with exit status 2."""

import sys

import pytest

from hfcls.api import train
from hfcls.cli.train import main, merge_args, parse_args
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe

from conftest import tiny_recipe_dict, write_recipe
from families import native_folder, timm_folder


def test_cfg_options_seed_and_work_dir_from_the_command_line(based):
    args = parse_args(
        [
            str(based),
            "train.epochs=2",
            "--cfg-options",
            "optim.lr=0.2",
            "data.batch_size=4",
            "--seed",
            "7",
            "--work-dir",
            "somewhere",
        ]
    )
    recipe = merge_args(args)
    assert (recipe.train.epochs, recipe.optim.lr, recipe.data.batch_size) == (2, 0.2, 4)
    assert recipe.seed == 7 and recipe.work_dir == "somewhere"


def test_default_work_dir_is_named_after_the_recipe(based):
    assert merge_args(parse_args([str(based)])).work_dir == "work_dirs/r"


def test_start_options_exclude_each_other(based, capsys):
    assert parse_args([str(based), "--resume"]).resume_from == "auto"
    assert parse_args([str(based), "--load-from", "w/best"]).load_from == "w/best"
    with pytest.raises(SystemExit) as both:
        parse_args([str(based), "--resume-from", "auto", "--load-from", "w"])
    assert both.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def run_cli(argv, capsys):
    """main(argv) expecting a user error: exit status 2 and one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    return err


def test_bad_override_prints_one_line_and_exits_2(based, capsys):
    err = run_cli([based, "optim.lrr=1"], capsys)
    assert err.startswith("error: ") and "did you mean" in err


def test_missing_data_folder_is_one_line(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(tmp_path / "nope", tmp_path / "nope"))
    err = run_cli([recipe, "--work-dir", tmp_path / "w"], capsys)
    assert "image folder" in err and "nope does not exist" in err


def test_unknown_model_type_is_one_line(tiny_recipe, tmp_path, capsys):
    err = run_cli([tiny_recipe, "model.config.model_type=resnett", "--work-dir", tmp_path / "w"], capsys)
    assert "model_type 'resnett' is not known to transformers" in err


def test_undecodable_image_is_named_or_skipped(tiny_data, tmp_path, capsys):
    train_dir, val_dir = tiny_data
    (train_dir / "cat" / "broken.png").write_bytes(b"not a png at all")
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(train_dir, val_dir))
    err = run_cli([recipe, "--work-dir", tmp_path / "w1"], capsys)
    assert "cannot decode image" in err and "broken.png" in err and "skip_bad_images" in err
    metrics = train(load_recipe(recipe, ["data.skip_bad_images=true"]), tmp_path / "w2")
    assert 0 <= metrics["accuracy_top1"] <= 100


def test_no_validate_trains_without_val_data(tmp_path, tiny_data):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, data={"val": None}))
    main([str(recipe), "--work-dir", str(tmp_path / "w"), "--no-validate"])
    rows = read_jsonl(tmp_path / "w" / "metrics.jsonl")
    assert len(rows) == 1 and not any(key.startswith("val_") for key in rows[0])
    assert (tmp_path / "w" / "latest" / "model.safetensors").is_file()
    assert not (tmp_path / "w" / "best").exists()


def test_bare_resume_and_overrides_after_options(tmp_path, tiny_data, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data))
    work = str(tmp_path / "w")
    main([str(recipe), "--work-dir", work])
    with pytest.raises(SystemExit) as refused:
        main([str(recipe), "--work-dir", work])
    assert refused.value.code == 2 and "already holds checkpoints" in capsys.readouterr().err
    main([str(recipe), "--work-dir", work, "--resume", "train.epochs=2"])
    assert [row["epoch"] for row in read_jsonl(tmp_path / "w" / "metrics.jsonl")] == [1, 2]
    with pytest.raises(SystemExit) as both:
        main([str(recipe), "--resume-from", "auto", "--load-from", work])
    assert both.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


# ----------------------------------------------------------------------------- fine-tuning's bad inputs


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """{"native": a 4-class tiny ResNet folder, "timm": a 5-class tiny timm ResNet-18 in timm's Hub layout}."""
    root = tmp_path_factory.mktemp("pretrained")
    return {
        "native": native_folder(root / "native", "resnet", ["a", "b", "c", "d"]),
        "timm": timm_folder(root / "timm", "resnet18"),
    }


def finetune_recipe(tmp_path, tiny_data, source):
    recipe = tiny_recipe_dict(*tiny_data, model={"pretrained": str(source)})
    del recipe["model"]["config"]
    return write_recipe(tmp_path / "finetune.yaml", recipe)


@pytest.mark.parametrize(
    "source, overrides, words",
    [
        ("native", ["optim.layer_decay=0"], ["optim.layer_decay must be in (0, 1], got 0.0"]),
        ("native", ["optim.layer_decay=1.01"], ["optim.layer_decay must be in (0, 1], got 1.01"]),
        ("native", ["optim.type=lino"], ["optim.type 'lino' is not an optimizer", 'did you mean "lion"']),
        (
            "native",
            ["train.gradient_checkpointing=true"],
            ["train.gradient_checkpointing: resnet (ResNetForImageClassification) cannot recompute"],
        ),
        (
            "native",
            ["model.config_overrides={layer_typ: basic}"],
            ["config_overrides: the resnet config of", "has no setting 'layer_typ'", 'did you mean "layer_type"'],
        ),
        (
            "timm",
            ["model.config_overrides={drop_path: 0.1}"],
            ["(timm's resnet18) has no setting 'drop_path'", 'did you mean "drop_path_rate"', "constructor takes"],
        ),
        (
            "native",
            ["model.ignore_mismatched_sizes=false"],
            ["has another class count than the data's 3 classes", "set it to true"],
        ),
        (
            "native",
            ["model.config_overrides={hidden_sizes: [8, 32]}"],
            ["resnet.encoder.stages.1.", "has shape (16,", "would start from random"],
        ),
        ("native", ["model.pretrained=null", "model.config={model_type: lenet5}", "optim.layer_decay=0.5"], []),
    ],
    ids=[
        "layer-decay-0",
        "layer-decay-above-1",
        "optimizer",
        "checkpointing",
        "native-override",
        "timm-override",
        "head-not-resized",
        "override-reshapes",
        "no-layer-rule",
    ],
)
def test_fine_tuning_mistakes_are_one_line(tmp_path, tiny_data, pretrained, capsys, source, overrides, words):
    recipe = finetune_recipe(tmp_path, tiny_data, pretrained[source])
    err = run_cli([recipe, *overrides, "--work-dir", tmp_path / "w"], capsys)
    for word in words or ["optim.layer_decay: hfcls knows no layers of lenet5"]:
        assert word in err, err
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_a_timm_model_without_timm_names_the_extra(tmp_path, tiny_data, pretrained, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if not installed: `import timm` raises ImportError
    err = run_cli([finetune_recipe(tmp_path, tiny_data, pretrained["timm"]), "--work-dir", tmp_path / "w"], capsys)
    assert '(a timm model) needs timm, which is not installed; pip install "hfcls[timm]"' in err
