"""hfcls-flops's command line: --shape, --num-classes, --per-layer --depth, and one-line errors."""

import pytest

from hfcls.cli.flops import main

from conftest import REPO, tiny_recipe_dict, write_recipe

RECIPES = REPO / "recipes"


def test_resnet50_matches_mmclassification(capsys):
    main([str(RECIPES / "imagenet" / "resnet50_8xb32_in1k.yaml")])
    out = capsys.readouterr().out
    assert "Input shape: (3, 224, 224)" in out
    assert "FLOPs: 8.18 G   (= 4.09 G multiply-accumulates" in out
    assert "Params: 25.56 M" in out


def test_per_layer_table_and_shape_option(capsys):
    main(
        [
            str(RECIPES / "mnist" / "lenet5_1xb128_mnist.yaml"),
            "--shape",
            "32",
            "32",
            "--num-classes",
            "10",
            "--per-layer",
            "--depth",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert "FLOPs: 1.30 M   (= 651.72 k multiply-accumulates" in out
    assert "Params: 62.01 k" in out
    table = [line.split() for line in out.splitlines()[5:]]
    assert table == [
        ["module", "FLOPs", "share", "params"],
        ["features", "1.28", "M", "98.3%", "50.99", "k"],  # 2 x (352,800 + 240,000 + 48,000) FLOPs
        ["classifier", "21.84", "k", "1.7%", "11.01", "k"],  # 2 x (10,080 + 840) FLOPs
    ]


def test_missing_input_size_is_one_line_error(tmp_path, capsys):
    recipe = tiny_recipe_dict(tmp_path, tmp_path, data={"eval_pipeline": []})
    with pytest.raises(SystemExit) as exit_info:
        main([str(write_recipe(tmp_path / "r.yaml", recipe))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data.eval_pipeline has no Resize/CenterCrop") and "--shape" in err
    assert len(err.splitlines()) == 1
