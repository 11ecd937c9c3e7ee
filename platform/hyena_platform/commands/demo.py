"""`hyena demo`: every use of the model card on the bundled genome (see hyena_platform.demo.run)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="hyena-demo",
                        help="directory for every output: MLflow store, checkpoints, scores, pictures (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true",
                        help="start over: delete what an earlier demo wrote in the work directory "
                             "(nothing else; refused if the directory holds other files)")
    parser.add_argument("--quick", action="store_true", help="toy sizes for every step (a smoke test in seconds; the numbers mean nothing)")


def run(args: argparse.Namespace) -> int:
    from hyena_platform.demo.run import run_demo

    # The libraries' INFO lines are kept off the terminal by the CLI entry (hyena_platform.terminal).
    result = run_demo(args.workdir, fresh=args.fresh, quick=args.quick)
    print(result.summary())
    return 0
