"""hfcls-flops: FLOPs and multiply-accumulates named plainly, parameters, a table by module."""

from pathlib import Path

import pytest
from transformers import AutoConfig, AutoModelForImageClassification

from conftest import tiny_recipe_dict, write_recipe
from hfcls.tools.flops import cli, count_flops

RECIPES = Path(__file__).resolve().parent.parent / "recipes"

# LeNet-5 on a 3x32x32 image, by hand: conv 5x5 3->6 at 28x28, 6->16 at 10x10,
# 16->120 at 1x1, then 120->84->10.
LENET_MACS = 6 * 28 * 28 * 25 * 3 + 16 * 10 * 10 * 150 + 120 * 400 + 120 * 84 + 84 * 10


def test_lenet_flops_are_twice_the_hand_counted_macs():
    model = AutoModelForImageClassification.from_config(AutoConfig.for_model("lenet5", num_channels=3, num_labels=10))
    assert count_flops(model, (3, 32, 32)).get_total_flops() == 2 * LENET_MACS == 1_303_440


def test_resnet50_matches_mmclassification(capsys):
    cli([str(RECIPES / "imagenet" / "resnet50_8xb32_in1k.yaml")])
    out = capsys.readouterr().out
    assert "Input shape: (3, 224, 224)" in out
    assert "FLOPs: 8.18 G   (= 4.09 G multiply-accumulates" in out
    assert "Params: 25.56 M" in out


def test_per_layer_table_and_shape_option(capsys):
    cli([str(RECIPES / "mnist" / "lenet5_1xb128_mnist.yaml"), "--shape", "32", "32", "--num-classes", "10",
         "--per-layer", "--depth", "1"])
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
        cli([str(write_recipe(tmp_path / "r.yaml", recipe))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: data.eval_pipeline has no Resize/CenterCrop") and "--shape" in err
    assert len(err.splitlines()) == 1
