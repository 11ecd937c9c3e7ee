"""The controller-side report callback (the single MLflow writer), fed reports directly."""

from __future__ import annotations

import json

import pytest

from hyena_platform import tracking
from hyena_platform.tracking import TrackingConfig
from hyena_platform.train.callback import ReportCallback

pytestmark = pytest.mark.integration  # a real MLflow store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> TrackingConfig:
    return TrackingConfig(uri="sqlite:///mlflow.db").resolved(tmp_path_factory.mktemp("cb"))


def report(steps, *, val=(), events=(), event="progress"):
    head = {"step": steps[-1] if steps else 0, "stage": 0, "event": event, "pid": 1, "rank": 0,
            "history": [{"step": s, "loss": 3.0 - s / 10, "lr": 1e-3, "stage": 0, "seq_len": 64,
                         "tokens_per_s": 1000.0, "step_s": 0.1, "data_s": 0.0, "compute_s": 0.1, "time_s": s / 10}
                        for s in steps],
            "val": [{"step": s, "seq_len": 64, "loss": 1.0} for s in val],
            "events": list(events), "last_report_s": 0.01}
    return [head, {"step": head["step"], "pid": 2, "rank": 1}]


def steps_of(store, run_id, key):
    return [s for s, _ in tracking.metric_history(store, run_id, key)]


def test_steps_recomputed_after_a_restart_are_logged_once(store, tmp_path):
    run_id = tracking.start_run(store, run_key="k1", run_name="k1")
    progress = tmp_path / "progress.jsonl"
    cb = ReportCallback(store, run_id, total_steps=10, n_stages=1, progress_path=str(progress))
    cb.after_report(None, report([1, 2]), None)
    cb.after_report(None, report([3, 4], val=[4]), None)
    # the worker group restarts from a checkpoint at step 2 and recomputes steps 3 and 4
    cb.after_report(None, report([3, 4, 5], val=[4], events=[{"type": "resumed", "step": 2}]), None)
    cb.after_report(None, [{"event": "flush", "step": 5}], None)  # the closing no-op report
    assert steps_of(store, run_id, "train/loss") == [1, 2, 3, 4, 5]
    assert steps_of(store, run_id, "val/loss") == [4]
    assert tracking.metric_history(store, run_id, "train/resumed_from_step") == [(2, 2.0)]
    assert tracking.metric_history(store, run_id, "val/bits_per_base") == [(4, pytest.approx(1 / 0.6931471805599453))]
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    assert [e["step"] for e in events] == [2, 4, 5]
    assert events[2]["resumed_from"] == [2] and events[0]["worker_pids"] == [1, 2]

    # a new controller (the driver was killed and rerun) reads the high-water mark from MLflow
    again = ReportCallback(store, run_id, total_steps=10, n_stages=1)
    again.after_report(None, report([4, 5, 6], events=[{"type": "resumed", "step": 4}]), None)
    assert steps_of(store, run_id, "train/loss") == [1, 2, 3, 4, 5, 6]


def test_a_tracking_outage_keeps_the_rows_for_the_next_report(store, monkeypatch):
    run_id = tracking.start_run(store, run_key="k2", run_name="k2")
    cb = ReportCallback(store, run_id, total_steps=10, n_stages=1)
    real = tracking.log_metrics

    def down(*args, **kwargs):
        raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(tracking, "log_metrics", down)
    cb.after_report(None, report([1, 2]), None)  # does not raise: training goes on
    monkeypatch.setattr(tracking, "log_metrics", real)
    cb.after_report(None, report([3]), None)
    assert steps_of(store, run_id, "train/loss") == [1, 2, 3]
