"""`hfcls-analyze RESULTS.pkl|json --out DIR [--n N]`: the most confident mistakes and successes of an
evaluation as image grids, accuracy per class and the confused pairs (from hfcls-eval --out-items pred)."""

from __future__ import annotations

from hfcls.cli import CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import output_folder


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-analyze", description=__doc__.splitlines()[0])
    parser.add_argument(
        "results",
        help="a results file of hfcls-eval --out (.json, .yaml or .pkl) with per-image predictions (--out-items pred)",
    )
    parser.add_argument("--out", type=output_folder, required=True, help="the folder to write into (new or empty)")
    parser.add_argument("--n", type=int, default=16, help="images per grid (default 16)")
    parser.add_overwrite("the files in --out")
    return parser.check_outputs(parser.parse_args(argv))


@cli_entry(flags={"n": "--n"})
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.analysis.failures import analyze

    found = analyze(args.results, args.out, args.n)
    names = found["class_names"]
    print(f"{found['mistakes']} mistakes in {found['images']} images")
    for true, predicted, count in found["pairs"]:
        print(f"  {names[true]} -> {names[predicted]}: {count}")
    for path in found["written"].values():
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
