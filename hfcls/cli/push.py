"""`hfcls-push MODEL REPO_ID [options]`: upload a model to the Hugging Face Hub with a generated model card.

MODEL is any artifact (best/, latest/, a published folder or file, a
checkpoints/epoch_N folder); the card's metrics and recipe come from the run it
belongs to. `--space SPACE_ID` also pushes a Gradio Space (app.py, requirements.txt,
its card) that runs hfcls's demo app on the model. `--dry-run` writes the exact
folders that would be uploaded and sends nothing.
"""

from __future__ import annotations

from pathlib import Path

from hfcls.cli import CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import output_folder


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-push", description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder",
        metavar="MODEL",
        help="a model artifact: latest/, best/, a published one, a checkpoints/epoch_N folder",
    )
    parser.add_argument("repo_id", metavar="REPO_ID", help="user/model on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", help="push to this branch (created if needed)")
    parser.add_argument("--commit-message")
    parser.add_argument("--work-dir", help="the run the metrics and recipe come from (default: the one MODEL is in)")
    parser.add_argument("--dry-run", action="store_true", help="write the upload folder and card, send nothing")
    parser.add_argument(
        "--out",
        type=output_folder,
        help="a new (or empty) folder for --dry-run to write (default: MODEL-hub beside MODEL)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out (and the Space's folder) when it holds files already (never the model or a run)",
    )
    parser.add_argument(
        "--space",
        metavar="SPACE_ID",
        help="also push a Gradio Space (user/name) running hfcls's demo app on REPO_ID; with --dry-run, "
        "written to OUT-space",
    )
    parser.add_argument(
        "--space-requirement",
        metavar="SPEC",
        help="the Space's requirements.txt line for hfcls (default hfcls[app,explain]==<this version>; e.g. "
        "'hfcls[app,explain] @ git+https://...' where hfcls comes from elsewhere)",
    )
    args = parser.parse_args(argv)
    if args.dry_run and args.out is None:
        source = Path(args.folder)
        args.out = str(source.with_name(source.with_suffix("").name + "-hub"))
    return parser.check_outputs(args)


@cli_entry(flags={"out": "--out", "work_dir": "--work-dir", "space_id": "--space", "space_out": "--out"})
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.artifacts.hub import card_metadata, push, space_folder, stage
        from hfcls.artifacts.space import HFCLS_REQUIREMENT
        from hfcls.logs import setup_logging

    setup_logging(None, is_main=True)  # results on stdout; library progress bars off
    source, requirement = Path(args.folder), args.space_requirement or HFCLS_REQUIREMENT
    if args.dry_run:
        staged = stage(source, args.repo_id, Path(args.out), args.work_dir, args.overwrite, args.space, requirement)
        files = ", ".join(sorted(p.name for p in staged.iterdir()))
        visibility = "private" if args.private else "public"
        print(f"dry run: wrote {staged} ({files}); would upload it to {visibility} repo {args.repo_id}")
        print(f"model card metadata (README.md front matter):\n{card_metadata(staged)}", end="")
        if args.space:
            space = space_folder(staged)
            files = ", ".join(sorted(p.name for p in space.iterdir()))
            print(f"wrote {space} ({files}); would upload it to Space {args.space}, running the app on {args.repo_id}")
        return
    urls = push(
        source, args.repo_id, args.private, args.revision, args.commit_message, args.work_dir, args.space, requirement
    )
    print("\n".join(urls))


if __name__ == "__main__":
    main()
