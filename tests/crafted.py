"""Hostile inputs for tests: what a crafted pickle holds."""

import os


class RunsCommand:
    """Unpickled, calls os.system: `touch marker`, so a test can see whether loading ran it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
