"""The ``kzoo`` command line: ``kzoo list``, ``kzoo info NAME``.

Usage errors (an unknown model, a bad flag value) exit with code 2 and one line on stderr.
"""

import argparse
import json
import os
import sys


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cmd_list(args):
    import kzoo

    names = kzoo.list_models(args.pattern)
    rows = [(n, kzoo.model_info(n).pattern, kzoo.model_info(n).cell) for n in names]
    width = max([len(r[0]) for r in rows] + [4])
    print(f"{'name':<{width}}  {'pattern':<12}  cell")
    for name, pattern, cell in rows:
        print(f"{name:<{width}}  {pattern:<12}  {cell}")
    return 0


def cmd_info(args):
    import kzoo

    info = kzoo.model_info(args.name)
    print(f"{info.name}: {info.description}")
    print(f"pattern: {info.pattern}\ncell: {info.cell}")
    print("default config:")
    print(json.dumps(info.default_config, indent=2, default=str))
    return 0


def make_parser():
    parser = argparse.ArgumentParser(prog="kzoo", description="A model zoo of recurrent networks.")
    commands = parser.add_subparsers(dest="command", required=True)
    list_parser = commands.add_parser("list", help="list the registered models")
    list_parser.add_argument("pattern", nargs="?", default=None,
                             help="an I/O pattern (many_to_one...) or a glob ('*lstm*')")
    list_parser.set_defaults(func=cmd_list)
    info_parser = commands.add_parser("info", help="describe one model")
    info_parser.add_argument("name")
    info_parser.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    _quiet_tensorflow()
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"kzoo {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
