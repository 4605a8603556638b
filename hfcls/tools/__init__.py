"""Command-line tools around datasets, models and runs."""
