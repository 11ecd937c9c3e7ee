"""The `hyena` command line.

Every subcommand lives in its own module and is imported only when chosen, so `hyena --help`
stays fast and a user error in one job never imports Ray or MLflow for nothing. User errors
(HyenaPlatformError) print one line and exit non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable, Sequence

from hyena_platform.errors import HyenaPlatformError
from hyena_platform.jobs import KINDS
from hyena_platform.terminal import quiet_libraries

# name -> (module, help). Each module defines add_arguments(parser) and run(args) -> int. Every
# job kind (hyena_platform.jobs.KINDS) is also a command, an alias of `hyena run` for its files.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("hyena_platform.commands.run", "run any job file: its kind: says which job (pretrain, score, shard, ...)"),
    **{kind.name: (kind.command, kind.help) for kind in KINDS.values()},
    "demo": ("hyena_platform.commands.demo", "the whole platform on embedded defaults: pretrain, register, score chrII, plot"),
    "generate": ("hyena_platform.commands.generate", "generate DNA from a prompt with the cached decoder: FASTA with per-base log-likelihoods"),
    "info": ("hyena_platform.commands.info", "show versions, the released model variants and the bundled genome"),
    "submit": ("hyena_platform.commands.submit", "submit a job YAML to a Ray cluster's job server, follow its logs, exit with its outcome"),
    "export": ("hyena_platform.commands.export", "export a model (path or models:/ URI) in our format or MultiMolecule's, for Hugging Face"),
    "upgrade-model": ("hyena_platform.commands.upgrade_model", "register a version from before MLflow Models again as an MLflow Model"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyena", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def console() -> int:
    """The `hyena` program (its console script, ``python -m hyena_platform.cli``): the defaults of
    the program's own process, then `main`. `main` itself, which tests and other code call in
    their process, changes no environment."""
    # The terminal shows our progress, not MLflow's per-file download bars (a user may turn them on).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args._run
    try:
        quiet_libraries()  # library INFO lines off the terminal (as each is first used): our progress shows
        return int(run(args) or 0)
    except HyenaPlatformError as err:
        print(f"hyena {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"hyena {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(console())
