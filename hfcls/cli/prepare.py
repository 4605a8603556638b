"""`hfcls-prepare DATASET DIR`: write a data set hfcls can generate offline from scikit-learn's bundled digits.

digits: class folders; imbalanced_digits: the same with 2 % of class 0's training images;
multilabel_digits: canvases of 2-3 digits side by side, labelled with the digits shown.
"""

from __future__ import annotations

import argparse

from hfcls.cli import cli_entry

DATASETS = ("digits", "imbalanced_digits", "multilabel_digits")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-prepare", description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("dir", help="output folder, e.g. data/digits")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    from hfcls.data.prepare import DATASETS as WRITERS

    counts = WRITERS[args.dataset](args.dir, args.val_fraction, args.seed)
    print(f"wrote {args.dataset} to {args.dir}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))


if __name__ == "__main__":
    main()
