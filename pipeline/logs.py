"""Logging for the command: ouroboros's own warnings are shown, third-party chatter is not.

Beam, absl and friends log warnings a user cannot act on; the loudest is Beam's
``WARNING:root:apitools not found ...``, which ``apache_beam/io/gcp/internal/clients/bigquery``
logs through the *root* logger at import time whenever the GCP extra is absent (so on every
``import apache_beam``). ``logging.warning`` also calls ``basicConfig()`` when the root logger has
no handler, which is why it printed even for ``ouroboros config --help``.

``configure`` must therefore run before anything imports Beam: it installs the handler (so the
import finds one) with a filter that lets through, by default, records of the ``ouroboros``
loggers at WARNING and above and anyone's records at ERROR and above. ``--log-level LEVEL``
removes the filter and shows every logger from LEVEL up, Beam's included. This module imports
nothing heavy on purpose.
"""

from __future__ import annotations

import logging
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
OWN_LOGGERS = ("ouroboros", "__main__")
FORMAT = "%(levelname)s:%(name)s:%(message)s"
# Beam's SDK-harness workers (DirectRunner multi_processing) print to the user's terminal.
HARNESS_LEVEL_OPTION = "--default_sdk_harness_log_level"


class QuietThirdParties(logging.Filter):
    """Passes ouroboros's records from `own_level` up and everyone's from ERROR up."""

    def __init__(self, own_level: int = logging.WARNING):
        super().__init__()
        self.own_level = own_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        own = record.name.split(".", 1)[0] in OWN_LOGGERS
        return own and record.levelno >= self.own_level


class _Stderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (tests and tools replace it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: str | None = None) -> None:
    """Sets up stderr logging for the command; `level` None is the quiet default (see above)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_ouroboros", False):
            root.removeHandler(handler)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler._ouroboros = True  # type: ignore[attr-defined]
    if level is None:
        handler.addFilter(QuietThirdParties(logging.WARNING))
        root.setLevel(logging.WARNING)
    else:
        root.setLevel(getattr(logging, level.upper()))
    root.addHandler(handler)


def harness_args(beam_args: list[str], level: str | None) -> list[str]:
    """Beam args with the SDK-harness log level of local worker processes set to match ours.

    DirectRunner's multi-processing workers log INFO (and Beam's import warning) to the terminal;
    quiet by default, as loud as `--log-level` asks. An explicit harness level wins."""
    if any(a.split("=", 1)[0] == HARNESS_LEVEL_OPTION for a in beam_args):
        return beam_args
    return [*beam_args, f"{HARNESS_LEVEL_OPTION}={(level or 'ERROR').upper()}"]
