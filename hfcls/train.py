"""Train a recipe: `accelerate launch hfcls/train.py RECIPE [key=value ...] [options]`.

Also `python hfcls/train.py ...` (one process), `python -m hfcls.train` and the
`hfcls-train` command; the flags are hfcls.cli.train's.
"""

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script: import hfcls from this checkout, and keep hfcls/'s own
    # modules (data, models, ...) from shadowing top-level packages.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from hfcls.cli.train import main  # noqa: E402

if __name__ == "__main__":
    main()
