"""Command-line tools that inspect recipes and models."""
