"""`hfcls-plot WORK_DIR [--out curves.png]`: loss, LR and validation accuracy per epoch of a run."""

from __future__ import annotations

from pathlib import Path

from hfcls.cli import CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import output_file


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-plot", description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path, help="an hfcls-train work dir")
    parser.add_argument("--out", type=output_file, help="image file to write (default: WORK_DIR/curves.png)")
    parser.add_overwrite("--out")
    args = parser.parse_args(argv)
    args.out = Path(args.out or args.work_dir / "curves.png")
    return parser.check_outputs(args)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.analysis.curves import export_records, load_rows, plot_curves

    print(plot_curves(load_rows(args.work_dir), args.out, str(args.work_dir), export_records(args.work_dir)))


if __name__ == "__main__":
    main()
