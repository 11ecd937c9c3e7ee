"""`hyena run JOB.yaml [--set key=value ...] [flags of its kind]`: run any job file.

The file's ``kind:`` (hyena_platform.jobs.KINDS) names the command that runs it, with the rest
of the command line as that command's arguments: `hyena run jobs/score_local.yaml --fresh` is
`hyena score jobs/score_local.yaml --fresh`. Job files under jobs/ start with
``#!/usr/bin/env -S hyena run``, so an executable job file runs itself (``jobs/pretrain.yaml``).
"""

from __future__ import annotations

import argparse
import importlib


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", help="job YAML file with a kind: key (see jobs/)")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="...",
                        help="--set KEY=VALUE overrides and the flags of the job's kind (hyena KIND --help)")


def run(args: argparse.Namespace) -> int:
    from hyena_platform.config import load_yaml_mapping
    from hyena_platform.jobs import KINDS, kind_of

    kind = KINDS[kind_of(load_yaml_mapping(args.job), source=args.job)]
    command = importlib.import_module(kind.command)
    parser = argparse.ArgumentParser(prog=f"hyena run ({kind.name})", description=kind.help)
    command.add_arguments(parser)
    return command.run(parser.parse_args([args.job, *args.args]))
