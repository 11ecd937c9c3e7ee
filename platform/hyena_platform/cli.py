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
from typing import Callable, Mapping, Sequence

from hyena_platform.errors import HyenaPlatformError
from hyena_platform.jobs import KINDS
from hyena_platform.local_ray import CLUSTER_SWITCH
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


def program_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment the `hyena` program runs with: `environ` plus its defaults (a value the
    user set wins). MLflow's per-file download bars stay off the terminal (our progress shows);
    on Linux, a run that may start a local Ray (no RAY_ADDRESS names a cluster) gets Ray's public
    switch for one that listens on 127.0.0.1 only (hyena_platform.local_ray; macOS and Windows
    have it by default)."""
    defaults = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    if sys.platform.startswith("linux") and not environ.get("RAY_ADDRESS"):
        defaults.update(CLUSTER_SWITCH)
    return {**defaults, **environ}


def console() -> int:
    """The `hyena` program (its console script, ``python -m hyena_platform.cli``).

    A process reads these switches when it starts (Ray's when Ray is imported), and library code
    never changes a running process's os.environ: so the program starts itself again, once, in
    place (os.execve: same process id, arguments and streams), with `program_environment`, before
    it imports anything else. `main`, which tests and other code call in their own process,
    changes no environment."""
    env = program_environment(os.environ)
    if os.name == "posix" and env != dict(os.environ):
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
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
