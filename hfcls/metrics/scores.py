"""What every shipped metric module takes: per-sample class scores and true labels."""

import datasets
import evaluate


def scores_metric_info(description: str, inputs_description: str) -> evaluate.MetricInfo:
    info = evaluate.MetricInfo(
        description=description,
        citation="",
        inputs_description=inputs_description,
        features=datasets.Features({
            "predictions": datasets.Sequence(datasets.Value("float32")),
            "references": datasets.Value("int64"),
        }),
    )
    # Read the inputs back as arrays, not Python lists (100x faster on big splits);
    # set after construction, whose check allows "numpy" only for scalar features.
    info.format = "numpy"
    return info
