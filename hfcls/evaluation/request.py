"""What `evaluate_checkpoint` is asked (`EvalRequest`, checked once, when it is made) and what it
answers (`EvalResult`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from hfcls.errors import HfclsError
from hfcls.evaluation.results import OUT_ITEMS, check_results_path
from hfcls.files import check_output
from hfcls.metrics import check_metric_names, given_metric_options
from hfcls.predict.tta import parse_tta

CONFUSION_PNG = "confusion_matrix.png"


@dataclass(frozen=True)
class EvalRequest:
    """Evaluate `checkpoint` (any artifact the reader knows) on the recipe's `split`.

    metrics: names from hfcls.metrics.METRICS, of the model's kind (single- or multi-label).
    metric_options: topk (single-label: default the recipe's evaluation.topk; multi-label: the
        top-k rule instead of the 0.5 threshold), thrs, average.
    use_ema: a training checkpoint's EMA (the default when it holds one) or its raw weights.
    batch_size: per process (default data.eval_batch_size or data.batch_size).
    out: a results file (.json, .yaml, .pkl) holding `out_items`: metrics, pred, class_scores,
        features (the pooled features the head reads); a multi-label prediction is every class
        at or above the first of thrs, else 0.5.
    show_dir: a new or empty folder confusion_matrix.png goes into. `out` and `show_dir` are refused
        now, before the evaluation, by the output rule (hfcls.files.check_output): unless `overwrite`,
        where something is there already.
    tta: "flip", "crops" or "flip,crops": the class scores averaged over those views (hfcls.predict.tta).
    """

    recipe: object
    checkpoint: str | Path
    split: str = "val"
    metrics: tuple = ()
    metric_options: dict = field(default_factory=dict)
    use_ema: bool | None = None
    batch_size: int | None = None
    out: str | Path | None = None
    out_items: tuple = ("metrics", "pred")
    show_dir: str | Path | None = None
    tta: tuple = ()
    overwrite: bool = False

    def __post_init__(self):
        settle = functools.partial(object.__setattr__, self)  # a frozen instance's fields, in their checked form
        settle("metrics", tuple(check_metric_names(self.metrics)))
        settle("metric_options", given_metric_options(self.metric_options))
        if not self.metrics and self.out is None:
            raise HfclsError("nothing to report: pass --metrics (e.g. --metrics accuracy f1_score) and/or --out FILE")
        unknown = sorted(set(self.out_items) - set(OUT_ITEMS))
        if unknown:
            raise HfclsError(
                f"out_items: unknown {', '.join(unknown)}; choose from {', '.join(OUT_ITEMS)}", param="out_items"
            )
        settle("out_items", tuple(self.out_items))
        if self.batch_size is not None and self.batch_size < 1:
            raise HfclsError(f"batch_size must be at least 1, got {self.batch_size}", param="batch_size")
        settle("tta", parse_tta(self.tta))
        if self.out is not None:
            check_results_path(self.out, self.overwrite)
        if self.show_dir is not None:
            check_output(self.show_dir, self.overwrite, kind="folder", what="show_dir", param="show_dir")


@dataclass(frozen=True)
class EvalResult:
    """An evaluation's answer, on the main process."""

    metrics: dict  # empty when none were asked for
    class_names: list
    samples: int  # images in the split, undecodable (skipped) ones included
    written: list  # the files written: the results file, the confusion-matrix picture
