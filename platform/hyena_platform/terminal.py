"""What the libraries may print on the terminal: their warnings and errors, never their INFO.

`quiet_libraries()` is called once by the `hyena` command (hyena_platform.cli) before a command
runs. It imports neither library, so that a command stopping on a bad job file never loads Ray
or MLflow (tests/test_run_command.py): MLflow's and alembic's loggers go to WARNING when the
command first opens an MLflow store (hyena_platform.tracking.request_quiet_logs: MLflow sets its
logger to INFO when imported, so the levels are set after that), Ray's are set by
hyena_platform.ray_setup.start_ray on every start. Nothing here touches os.environ: a program that
wants the libraries' INFO lines sets those logger levels itself.
"""

from __future__ import annotations


def quiet_libraries() -> None:
    from hyena_platform import tracking

    tracking.request_quiet_logs()  # Ray's levels: ray_setup.start_ray, on every start
