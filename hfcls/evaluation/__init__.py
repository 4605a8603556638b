"""Testing a model: `evaluate_checkpoint(EvalRequest) -> EvalResult`, its results files and report."""
