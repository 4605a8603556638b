"""hfcls-push's command line: --dry-run [--out], --private, --revision, --commit-message, and one-line errors."""

import pytest
from huggingface_hub import constants

from hfcls.cli.push import main

from conftest import FakeHub


def test_dry_run_writes_the_folder_and_says_so(two_epoch_run, tmp_path, capsys):
    [published] = sorted((two_epoch_run / "publish").glob("*.safetensors"))
    out = tmp_path / "staged"
    main([str(published.with_suffix("")), "me/tiny-colours", "--dry-run", "--out", str(out)])
    printed = capsys.readouterr().out
    assert printed.startswith(
        f"dry run: wrote {out} (README.md, config.json, example.png, model.safetensors, "
        "preprocessor_config.json, training_record.json); would upload it to public repo me/tiny-colours\n"
        "model card metadata (README.md front matter):\n"
    )
    assert "pipeline_tag: image-classification" in printed
    assert "me/tiny-colours" in (out / "README.md").read_text()


def test_upload_sends_the_staged_folder(two_epoch_run, monkeypatch, capsys):
    run = two_epoch_run
    hub = FakeHub(monkeypatch)
    main([str(run / "latest"), "me/tiny", "--private", "--revision", "v1", "--commit-message", "first"])
    assert capsys.readouterr().out.strip() == "https://huggingface.co/me/tiny/commit/abc"
    # The flags reach the upload (what is uploaded: tests/artifacts/test_hub.py).
    (_, _, create_args), (_, _, branch_args), (_, _, upload_args) = hub.calls
    assert create_args["private"] and branch_args["branch"] == upload_args["revision"] == "v1"
    assert upload_args["commit_message"] == "first"


def test_offline_is_one_clear_line(two_epoch_run, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as exit_info:
        main([str(two_epoch_run / "latest"), "me/tiny"])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err == "error: cannot push: HF_HUB_OFFLINE is set; unset it "
        "(or use --dry-run to write the folder only)\n"
    )


def test_dry_run_into_a_folder_with_files_is_one_line(two_epoch_run, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        main([str(two_epoch_run / "latest"), "me/tiny", "--dry-run", "--out", str(tmp_path / "taken")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: --out {tmp_path / 'taken'} is a non-empty folder already")  # the library's `out`


def test_a_work_dir_that_is_no_run_is_named_by_its_flag(two_epoch_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                str(two_epoch_run / "latest"),
                "me/tiny",
                "--dry-run",
                "--out",
                str(tmp_path / "staged"),
                "--work-dir",
                str(tmp_path),
            ]
        )
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: --work-dir {tmp_path} has no recipe.yaml; pass the run's work dir\n"
