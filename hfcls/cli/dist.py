"""The launch/ scripts' helpers: `python -m hfcls.cli.dist port RECIPE | check-port PORT`.

port RECIPE      the job's port: $PORT, else the recipe's dist.port, else 29500
check-port PORT  exit 2 with one line when PORT is taken on this machine
"""

from __future__ import annotations

from hfcls.cli import CommandParser, cli_entry, heavy_imports


def parse_args(argv=None):
    parser = CommandParser(prog="python -m hfcls.cli.dist", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("port", help="print the job's port").add_argument("recipe")
    commands.add_parser("check-port", help="fail when the port is taken here").add_argument("port")
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.engine.dist import check_port_free, launch_port, parse_port

    if args.command == "port":
        print(launch_port(args.recipe))
    else:
        check_port_free(parse_port(args.port, "port"))


if __name__ == "__main__":
    main()
