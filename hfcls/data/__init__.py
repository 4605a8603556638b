"""Data: sources -> datasets.Dataset{image, label} -> transforms -> DataLoaders."""
