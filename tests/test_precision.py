"""train.mixed_precision is checked against the hardware before a run starts."""

import logging

import pytest
import torch

from hfcls import precision
from hfcls.errors import HfclsError


def test_bf16_on_a_gpu_without_it_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Tesla V100")
    with pytest.raises(HfclsError, match="Tesla V100 has none: set train.mixed_precision=fp16 or no"):
        precision.check_mixed_precision("bf16", "cuda")
    precision.check_mixed_precision("fp16", "cuda")  # fp16 runs on it


def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="hfcls.precision"):
        precision.check_mixed_precision("bf16", "cpu")
    assert "emulated and slower than fp32; set train.mixed_precision=no" in caplog.text
    caplog.clear()
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    with caplog.at_level(logging.WARNING, logger="hfcls.precision"):
        precision.check_mixed_precision("bf16", "cpu")
        precision.check_mixed_precision("no", "cpu")
    assert caplog.text == ""


def test_training_checks_the_precision_before_it_starts(tiny_recipe, tmp_path, monkeypatch):
    from hfcls.engine import train
    from hfcls.recipe import load_recipe

    monkeypatch.setattr("hfcls.engine.default_device_type", lambda: "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Tesla T4")
    with pytest.raises(HfclsError, match="Tesla T4"):
        train(load_recipe(tiny_recipe, ["train.mixed_precision=bf16"]), tmp_path / "work")
