"""A model folder that brings its own Python code (config.json auto_map) runs nothing unless the recipe opts in."""

import json

import pytest
from safetensors.torch import save_file
from transformers import ResNetConfig, ResNetForImageClassification

from hfcls.artifacts.loading import load_model
from hfcls.cli.eval import main as evaluate
from hfcls.errors import HfclsError
from hfcls.models import build_model
from hfcls.recipe import recipe_from_dict

from conftest import make_image_folder, tiny_recipe_dict, write_recipe

TINY = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic", "num_labels": 3}
# Importing either file leaves a trace: what "the folder's code ran" looks like.
CODE = """
import pathlib
pathlib.Path(r"{folder}", "RAN").touch()  # an absolute path: transformers runs a copy in its module cache
from transformers import ResNetConfig, ResNetForImageClassification
class EvilConfig(ResNetConfig):
    model_type = "evil_net"
class EvilModel(ResNetForImageClassification):
    config_class = EvilConfig
"""


@pytest.fixture
def custom_code_folder(tmp_path, monkeypatch):
    """A Hugging Face folder whose model_type only its own Python files define."""
    import transformers.dynamic_module_utils as dynamic

    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # keep ~/.cache clean
    folder = tmp_path / "custom"
    folder.mkdir()
    for name in ("configuration_evil.py", "modeling_evil.py"):
        (folder / name).write_text(CODE.replace("{folder}", str(folder)))
    config = {
        **ResNetConfig(**TINY).to_dict(),
        "model_type": "evil_net",
        "architectures": ["EvilModel"],
        "auto_map": {
            "AutoConfig": "configuration_evil.EvilConfig",
            "AutoModelForImageClassification": "modeling_evil.EvilModel",
        },
    }
    (folder / "config.json").write_text(json.dumps(config))
    save_file(ResNetForImageClassification(ResNetConfig(**TINY)).state_dict(), folder / "model.safetensors")
    (folder / "preprocessor_config.json").write_text("{}")
    return folder


def model_section(folder, trust):
    recipe = tiny_recipe_dict(
        "train", "val", model={"pretrained": str(folder), "config": None, "trust_remote_code": trust}
    )
    return recipe_from_dict(recipe).model


def test_a_pretrained_folder_with_custom_code_is_refused_naming_its_auto_map(custom_code_folder):
    with pytest.raises(
        HfclsError,
        match=r"^model\.pretrained: .*custom needs its own Python code to load \(config\.json "
        r"auto_map AutoModelForImageClassification: modeling_evil\.EvilModel\), and "
        r"hfcls runs no code from model files; set model\.trust_remote_code: true",
    ):
        build_model(model_section(custom_code_folder, trust=False), ["a", "b", "c"])
    assert not (custom_code_folder / "RAN").exists()


def test_the_recipe_key_opts_in_and_then_the_code_runs(custom_code_folder):
    model = build_model(model_section(custom_code_folder, trust=True), ["a", "b", "c"])
    assert type(model).__name__ == "EvilModel" and model.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert (custom_code_folder / "RAN").exists()  # what the key means, shown


def test_the_artifact_reader_and_hfcls_eval_refuse_it_too(custom_code_folder, tmp_path, capsys):
    with pytest.raises(HfclsError, match=r"custom needs its own Python code to load \(config\.json auto_map"):
        load_model(custom_code_folder)
    data = [make_image_folder(tmp_path / "data" / split, per_class=2) for split in ("train", "val")]
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*data))
    with pytest.raises(SystemExit) as exit_info:
        evaluate([str(recipe), str(custom_code_folder), "--metrics", "accuracy"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {custom_code_folder}: ") and "auto_map" in err and err.count("\n") == 1
    assert not (custom_code_folder / "RAN").exists()
