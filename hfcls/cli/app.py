"""`hfcls-app CHECKPOINT [--examples FOLDER] [--port 7860] [options]`: try a model in the browser (a Gradio app).

Upload, drop or paste an image, or pick one of --examples: the page shows its top-k labels with their
scores (for a multi-label model, every label over a threshold slider) and, on request, the Grad-CAM
overlay; several images at once give a table and a CSV to download. The labels are hfcls-demo's.
Needs the app extra (gradio); Grad-CAM the explain extra.
"""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, add_ema_flags, cli_entry, heavy_imports
from hfcls.cli.types import int_between

FLAGS = {
    "port": "--port",
    "host": "--host",
    "examples": "--examples",
    "top_k": "--topk",
    "threshold": "--threshold",
    "device": "--device",
}


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-app", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument(
        "checkpoint",
        help="a best/ or latest/ folder, a checkpoints/epoch_N folder, a published .safetensors file or an .onnx file",
    )
    parser.add_argument("--examples", metavar="FOLDER", help="images to offer as examples (a folder, file or glob)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to serve on (default 127.0.0.1, this machine only; 0.0.0.0 for every network)",
    )
    parser.add_argument("--port", type=int_between(1, 65535), default=7860, help="default 7860")
    parser.add_argument(
        "--topk",
        type=int_between(1),
        help="labels to show (default 5; a multi-label model: every one over the threshold)",
    )
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="a multi-label model's starting threshold (default 0.5)"
    )
    parser.add_argument("--recipe", help="the training recipe: needed for a bare .safetensors file")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    parser.add_argument("--title", help="the page's title (default: hfcls: CHECKPOINT's name)")
    add_ema_flags(parser)
    return parser.parse_args(argv)


@cli_entry(flags=FLAGS)
def main(argv=None):
    args = parse_args(argv)
    from hfcls.app.serve import check_port, start_app  # the standard library only

    check_port(args.host, args.port)  # a busy port is said now, not after torch and gradio have loaded
    with heavy_imports():
        from hfcls.artifacts.weights import inspect_artifact  # torch, not gradio

    inspect_artifact(args.checkpoint)  # so is a path that holds no model (a data folder, a URL, an image)
    with heavy_imports():
        import hfcls.app.page  # noqa: F401  transformers, gradio
        from hfcls.logs import setup_logging

    setup_logging(None, is_main=True)
    app = start_app(
        args.checkpoint,
        host=args.host,
        port=args.port,
        examples=args.examples,
        recipe=args.recipe,
        device=args.device,
        top_k=args.topk,
        threshold=args.threshold,
        use_ema=args.use_ema,
        title=args.title,
    )
    print(f"serving {args.checkpoint} at {app.url} (Ctrl-C to stop)", flush=True)
    app.wait()


if __name__ == "__main__":
    main()
