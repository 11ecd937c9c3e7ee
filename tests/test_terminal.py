"""The terminal shows our progress and results only (issue 16): the pattern of a library's log and
warning lines (tests/_quiet.py) catches what MLflow, alembic and Ray print. A real `hyena pretrain`
in a subprocess, on a new SQLite store (MLflow's table-creation INFO lines), through Ray Train and
Ray Data (deprecation warnings), killed and rerun, prints none of them: tests/test_resume_losses.py.
The local start's own notices (token authentication, the raylet's worker count) are checked by
tests/test_network.py, whose `hyena shard` starts its own local Ray."""

from __future__ import annotations

from _quiet import library_noise


def test_noise_pattern_catches_what_the_libraries_print():
    printed = [
        "2026/11/29 23:22:28 INFO mlflow.store.db.utils: Creating initial MLflow database tables...",
        "2026-11-29 23:22:34,465\tWARNING authentication_token_setup.py:85 -- Token authentication is enabled",
        "\x1b[33m(raylet)\x1b[0m WARNING: 8 PYTHON worker processes have been started on node: ab",
        "/x/execution_options.py:436: RayDeprecationWarning: `ExecutionOptions.exclude_resources` is deprecated",
        "[2026-11-30 01:02:03,456 W 1234 5678] actor_manager.cc:187: Actor 'MapWorker(MapBatches(ScoreReplica))' "
        "has constructor arguments in the object store and max_restarts > 0.",
    ]
    assert library_noise("\n".join(printed)) == printed
    assert library_noise("  [stage 1/2 L=64] step 4/6  loss 2.1675  7,280 tok/s  ETA -\n"
                         "    held-out L=64 at step 4: loss 2.1159  perplexity 8.2970  3.0526 bits/base") == []
