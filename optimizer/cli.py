"""The one entry point: `reflectopt COMMAND ...`.

Each command family lives in its own module that exposes `register_commands(subparsers)`; a handler
returns an exit code. `ReflectoptError`s become one line on stderr and their exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from optimizer import __version__
from optimizer.constants import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE
from optimizer.errors import ReflectoptError

# Modules that contribute subcommands (in help order).
COMMAND_MODULES = (
    "optimizer.commands",  # run, resume, evaluate, grid, calibrate
    "optimizer.report",  # report
    "optimizer.assets",  # scene push|pull|hash
    "optimizer.results",  # results ls|get
    "optimizer.submit",  # submit, status, logs, cancel
)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line + usage hint, exit 2 (argparse's own behaviour, kept short)
        sys.stderr.write(f"reflectopt: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reflectopt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"reflectopt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name:
                continue  # family not built yet
            raise
        mod.register_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ReflectoptError as err:
        for line in str(err).splitlines() or [type(err).__name__]:
            sys.stderr.write(f"reflectopt: error: {line}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("reflectopt: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
