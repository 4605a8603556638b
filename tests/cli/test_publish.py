"""hfcls-publish's command line: IN OUT [--date] [--ema|--no-ema] [--recipe], the path printed, one-line errors."""

import datetime

import pytest
from safetensors.torch import load_file

from hfcls.artifacts.weights import file_sha256
from hfcls.cli.publish import main, parse_args


def test_publishes_a_checkpoint_with_date_and_prints_the_file(cifar_resnet_run, tmp_path, capsys):
    checkpoint = cifar_resnet_run / "checkpoints" / "epoch_1"
    main([str(checkpoint), str(tmp_path / "release" / "tiny"), "--date"])
    printed = capsys.readouterr().out.strip()
    [published] = sorted((tmp_path / "release").glob("*.safetensors"))
    assert printed == str(published)
    assert published.name == f"tiny_{datetime.date.today():%Y%m%d}-{file_sha256(published)[:8]}.safetensors"
    assert load_file(published).keys() == load_file(checkpoint / "model.safetensors").keys()


def test_other_bytes_under_the_hashed_name_are_named_as_out(cifar_resnet_run, tmp_path, capsys):
    main([str(cifar_resnet_run / "checkpoints" / "epoch_1"), str(tmp_path / "tiny")])
    published = capsys.readouterr().out.strip()
    with open(published, "ab") as f:
        f.write(b"!")
    with pytest.raises(SystemExit) as exit_info:
        main([str(cifar_resnet_run / "checkpoints" / "epoch_1"), str(tmp_path / "tiny")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(
        f"error: OUT: the published {published} is a file already; nothing was written"
    )


def test_ema_flags(capsys):
    assert parse_args(["in", "out"]).use_ema is None
    assert parse_args(["in", "out", "--ema"]).use_ema is True
    assert parse_args(["in", "out", "--no-ema"]).use_ema is False
    with pytest.raises(SystemExit) as both:
        parse_args(["in", "out", "--ema", "--no-ema"])
    assert both.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_not_a_model_folder_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a model folder" in err[0]


def test_ema_of_a_run_without_one_is_one_line_error(cifar_resnet_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(cifar_resnet_run / "checkpoints" / "epoch_1"), str(tmp_path / "out"), "--ema"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no EMA weights (ema.safetensors)" in err[0]
