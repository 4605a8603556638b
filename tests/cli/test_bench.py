"""hfcls-bench's command line: overrides after the options, the variants it reports, --json, one-line errors."""

import json

import pytest

from hfcls.cli.bench import main


def test_bench_reports_every_variant_and_ratio(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "bench.json"
    main(
        [
            str(tiny_recipe),
            "--what",
            "train",
            "--baseline",
            "--synthetic",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--rounds",
            "2",
            "--json",
            str(out),
            "train.channels_last=true",
        ]
    )
    printed = capsys.readouterr().out
    names = [
        "baseline (HF examples)",
        "hfcls loader, fp32 NCHW",
        "hfcls loader, recipe (fp32 channels_last)",
        "synthetic (compute only)",
    ]
    report = json.loads(out.read_text())
    assert [r["variant"] for r in report["results"]] == names
    assert report["machine"]["cpus"] >= 1 and report["settings"]["what"] == "train"
    assert report["settings"]["overrides"] == "train.channels_last=true"
    for row in report["results"]:
        assert row["images_per_sec"] > 0 and row["step_ms_median"] > 0 and row["measured_steps"] == 2
        assert row["peak_mem_mib"] > 50 and row["batch_size"] == 8
        assert 0 <= row["data_wait_fraction"] < 1 and row["gpu_idle_fraction"] is None  # no GPU here
    assert printed.startswith("machine: ") and printed.count("/ baseline: ") == 3
    for name in names[1:]:
        assert f"ratio {name} / baseline: " in printed
    # Real data against the compute-only ceiling at the same settings (fp32 channels_last) only.
    fractions = [row["fraction_of_synthetic"] for row in report["results"]]
    assert fractions[:2] == [None, None] and fractions[3] is None and 0 < fractions[2]
    recipe_row, synthetic_row = report["results"][2:]
    assert fractions[2] == pytest.approx(recipe_row["images_per_sec"] / synthetic_row["images_per_sec"])
    assert printed.count("real / synthetic ") == 1
    assert f"real / synthetic {names[2]}: {fractions[2]:.0%} of the compute-only images/s" in printed
    assert synthetic_row["data_wait_fraction"] < 0.5  # its one batch is always there


def test_bench_user_errors_exit_2(tiny_recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tiny_recipe), "--what", "eval", "data.val=null"])
    assert exit_info.value.code == 2
    assert "--what eval needs a data.val source" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(tiny_recipe), "--steps", "2", "--rounds", "3"])
    assert exit_info.value.code == 2
    assert "--rounds between 1 and --steps" in capsys.readouterr().err
