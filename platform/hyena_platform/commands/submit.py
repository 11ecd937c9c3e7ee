"""`hyena submit JOB.yaml [--address URL] [--no-wait] [--set key=value ...] [--fresh] [--overwrite]`.

Validates the job file here, submits `hyena <pretrain|score|shard> JOB.yaml --set ...` to a
Ray cluster's job server with the file's ``submission:`` settings, follows the logs and exits
with the job's outcome. See hyena_platform.submit.
"""

from __future__ import annotations

import argparse
import os

from hyena_platform.commands.common import add_flags, add_job_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_job_arguments(parser)
    parser.add_argument("--address", metavar="URL",
                        help="the cluster's job server (default: $RAY_API_SERVER_ADDRESS, $RAY_ADDRESS, "
                             "else http://127.0.0.1:8265, where `ray attach cluster/aws.yaml -p 8265` forwards the head's)")
    add_flags(parser, {
        "--no-wait": "return once the job is submitted instead of following its logs",
        "--dry-run": "validate the job and print what would be submitted; contact no cluster",
        "--fresh": "passed to the job: start over instead of resuming (pretrain, score)",
        "--overwrite": "passed to the job: replace existing output (score, shard)",
    })

def run(args: argparse.Namespace) -> int:
    from hyena_platform.submit import build_request, client_environment, submit

    flags = [flag for flag, on in (("--fresh", args.fresh), ("--overwrite", args.overwrite)) if on]
    request = build_request(args.job, args.overrides, flags)
    if args.dry_run:
        print(request.describe())
        return 0
    # This process talks to one job server: set its environment for Ray's client (token mode,
    # the resolved address only) before Ray is imported.
    url = client_environment(args.address, os.environ)
    return submit(request, address=url, wait=not args.no_wait)
