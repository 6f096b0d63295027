"""reflectopt: where to mount passive radio reflectors so the worst-covered spot gets the most signal.

Each command family lives in a module of this package that exposes `register(subparsers)`; a handler
returns an exit code. `ReflectoptError`s become one line on stderr and their exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import re
import sys

from optimizer import __version__
from optimizer.constants import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE
from optimizer.errors import ReflectoptError, caused_by_interrupt



class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A value that starts with '-' and then a digit or '.' is a (list of) number(s), not an option:
        # `--pose -5,7.5,5,141` (argparse alone takes only a single negative number for a value)
        self._negative_number_matcher = re.compile(r"^-\.?\d")

    def error(self, message):  # one line + usage hint, exit 2 (argparse's own behaviour, kept short)
        sys.stderr.write(f"reflectopt: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reflectopt", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"reflectopt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    from optimizer.cli import data, kube, report, run, schema, tools

    # in help order: run, resume | evaluate, grid, calibrate | report | scene, results | submit, status, logs,
    # cancel | schema
    for family in (run, tools, report, data, kube, schema):
        family.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from optimizer.search import outage
    from optimizer.store import storage

    outage.to_console()  # an object-store outage: one line when it begins, one when it ends
    try:
        return int(args.handler(args) or 0)
    except ReflectoptError as err:
        for line in str(err).splitlines() or [type(err).__name__]:
            sys.stderr.write(f"reflectopt: error: {line}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("reflectopt: interrupted\n")
        return EXIT_INTERRUPTED
    except RuntimeError as err:
        if not caused_by_interrupt(err):  # Ctrl-C inside a Dr.Jit loop arrives wrapped
            raise
        sys.stderr.write("reflectopt: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAILURE
    finally:
        storage.report_outages_to(None)


if __name__ == "__main__":
    sys.exit(main())
