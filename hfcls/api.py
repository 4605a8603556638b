"""Train a recipe from Python: `hfcls.api.train(recipe, work_dir)`, what hfcls-train runs."""

from __future__ import annotations

from pathlib import Path

from hfcls.artifacts.publish import publish_run
from hfcls.artifacts.run_dir import work_dir_lock
from hfcls.engine.loop import fit


def train(
    recipe,
    work_dir,
    *,
    resume_from: str | None = None,
    validate: bool = True,
    load_from: str | None = None,
    restart: bool = False,
) -> dict:
    """Train, then publish the model it evaluated last into <work_dir>/publish/ (train.publish);
    return the last validation metrics (empty without validation). The work dir is
    locked for the whole run: a second run into it stops at once. `restart`: start over where an
    earlier run left files, which are moved to <work_dir>/previous/<time>/ first."""
    with work_dir_lock(work_dir):
        result = fit(recipe, work_dir, resume_from=resume_from, validate=validate, load_from=load_from, restart=restart)
        if result.is_main_process:
            publish_run(recipe, Path(work_dir), result.model, result.weights)
    return result.metrics
