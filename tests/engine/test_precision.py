"""train.mixed_precision is checked against the hardware before a run starts."""

import logging
import platform

import pytest
import torch

from hfcls.engine.precision import check_mixed_precision, cpu_has_bf16
from hfcls.errors import HfclsError


def test_bf16_on_a_gpu_without_it_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Tesla V100")
    with pytest.raises(HfclsError, match="Tesla V100 has none: set train.mixed_precision=fp16 or no"):
        check_mixed_precision("bf16", "cuda")
    check_mixed_precision("fp16", "cuda")  # fp16 runs on it


def x86_cpu(monkeypatch, bf16: bool):
    """An x86 CPU with or without bf16 instructions (AVX512-BF16 or AMX), as torch reports them."""
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: bf16)


def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch, caplog):
    x86_cpu(monkeypatch, bf16=False)
    assert not cpu_has_bf16()
    with caplog.at_level(logging.WARNING, logger="hfcls.engine.precision"):
        check_mixed_precision("bf16", "cpu")
    assert "emulated and slower than fp32; set train.mixed_precision=no" in caplog.text
    caplog.clear()
    x86_cpu(monkeypatch, bf16=True)
    with caplog.at_level(logging.WARNING, logger="hfcls.engine.precision"):
        check_mixed_precision("bf16", "cpu")
        check_mixed_precision("no", "cpu")
    assert caplog.text == ""


def test_arm_cpus_are_given_the_benefit_of_the_doubt(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert cpu_has_bf16()


def test_training_checks_the_precision_before_it_starts(tiny_recipe, tmp_path, monkeypatch):
    from hfcls.api import train
    from hfcls.recipe import load_recipe

    # A CUDA device without bf16, as torch would report it; nothing is built before the check.
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda check_available=False: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "Tesla T4")
    with pytest.raises(HfclsError, match="Tesla T4"):
        train(load_recipe(tiny_recipe, ["train.mixed_precision=bf16"]), tmp_path / "work")
    assert not (tmp_path / "work" / "checkpoints").exists()
