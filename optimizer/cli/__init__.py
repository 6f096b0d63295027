"""The one entry point, `reflectopt` (`optimizer.cli.main`), and its command families, one module each."""

from optimizer.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
