"""hfcls/train.py, the script `accelerate launch hfcls/train.py RECIPE` runs, is also `python -m hfcls.train`."""

import subprocess
import sys

from commands import ENV, ok, run
from conftest import REPO


def test_python_m_hfcls_train_runs_as_the_script_does(based, tmp_path):
    as_module = ok(run("hfcls.train", based, "optim.lr=0.5", "--print-recipe", cwd=tmp_path))
    as_script = subprocess.run(
        [sys.executable, str(REPO / "hfcls" / "train.py"), str(based), "optim.lr=0.5", "--print-recipe"],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    assert "lr: 0.5" in as_module and as_module == ok(as_script)
