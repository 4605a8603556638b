"""hfcls-demo's command line: IMAGE CHECKPOINT [--topk] [--out] [--device] ..., what it prints, one-line errors."""

import shutil

import pytest

from hfcls.cli.demo import main as demo_cli


def test_demo_prints_topk_and_draws_the_prediction(trained_digits, classifier, val_files, tmp_path, capsys):
    out = tmp_path / "vis" / "one.png"
    demo_cli([val_files[5], str(trained_digits[1] / "best"), "--topk", "3", "--out", str(out), "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    expected = classifier(val_files[5], top_k=3)
    assert lines[0] == val_files[5]
    assert lines[1:4] == [f"  {i}. {p['label']}  {p['score']:.4f}" for i, p in enumerate(expected, 1)]
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_demo_on_a_folder_skips_undecodable_files(trained_digits, digits_dir, tmp_path, capsys, caplog):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for image in sorted((digits_dir / "val" / "7").iterdir())[:4]:
        shutil.copy(image, folder)
    (folder / "broken.png").write_bytes(b"not a png")
    demo_cli(
        [
            str(folder),
            str(trained_digits[1] / "best"),
            "--topk",
            "1",
            "--num-workers",
            "0",
            "--out",
            str(tmp_path / "vis"),
        ]
    )
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(folder))]
    images = sorted(p for p in folder.iterdir() if p.name != "broken.png")
    assert printed == [str(p) for p in images] and len(images) == 4
    assert "broken.png" in caplog.text and "skipped" in caplog.text
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == [p.stem + ".png" for p in images]


@pytest.mark.parametrize(
    "image, message",
    [
        ("nowhere/*.png", "no image files at nowhere/*.png"),
        ("broken", "cannot decode image"),
    ],
)
def test_demo_user_errors(trained_digits, tmp_path, capsys, image, message):
    if image == "broken":
        image = tmp_path / "broken.jpg"
        image.write_bytes(b"junk")
    with pytest.raises(SystemExit) as exit_info:
        demo_cli([str(image), str(trained_digits[1] / "best")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--topk", "0"], "--topk must be at least 1, got 0"),
        (["--threshold", "1.5"], "--threshold is a sigmoid score between 0 and 1, got 1.5"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        (["--num-workers", "-1"], "--num-workers must be 0 or more, got -1"),
        (["--device", "foo"], "--device foo: not a device torch knows; use cpu, cuda, cuda:1, ..."),
    ],
)
def test_a_bad_flag_is_named_by_its_flag(tmp_path, capsys, flags, message):
    image = tmp_path / "image.png"
    image.write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        demo_cli([str(image), str(tmp_path / "nothing here"), *flags])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {message}\n"
