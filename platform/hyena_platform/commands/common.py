"""What every job command shares: the job file argument and ``--set`` overrides."""

from __future__ import annotations

import argparse


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every job command takes: the YAML file and --set overrides."""
    parser.add_argument("job", help="job YAML file (see jobs/)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=3e-4 (repeatable; VALUE is YAML)",
    )


def add_flags(parser: argparse.ArgumentParser, flags: dict[str, str]) -> None:
    """On/off options, ``{"--fresh": "help text", ...}``."""
    for flag, help_text in flags.items():
        parser.add_argument(flag, action="store_true", help=help_text)
