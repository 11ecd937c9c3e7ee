"""What the libraries may print on the terminal: their warnings and errors, never their INFO.

`quiet_libraries()` is called once by the `hyena` command (hyena_platform.cli) before a command
runs: MLflow's and alembic's loggers at WARNING (hyena_platform.tracking.quiet_logs: MLflow
sets its logger to INFO when imported, so it is imported first), Ray's at the levels of
hyena_platform.ray_setup (also applied by every job started from Python). Nothing here touches
os.environ: a program that wants the libraries' INFO lines sets those logger levels itself.
"""

from __future__ import annotations


def quiet_libraries() -> None:
    from hyena_platform import tracking
    from hyena_platform.ray_setup import quiet_ray_logs

    tracking.quiet_logs()
    quiet_ray_logs()
