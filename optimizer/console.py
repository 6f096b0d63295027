"""The run's own lines on the console: one line each, on stderr, prefixed `[reflectopt]`."""

from __future__ import annotations

import sys

PREFIX = "[reflectopt]"


def say(msg: str):
    sys.stderr.write(f"{PREFIX} {msg}\n")
    sys.stderr.flush()
