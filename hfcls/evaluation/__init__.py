"""Testing a model: `evaluate_checkpoint(recipe, checkpoint, ...)`, its results files and report."""
