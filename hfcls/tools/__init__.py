"""Command-line tools around datasets and models: verify, browse, ..."""
