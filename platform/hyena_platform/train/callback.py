"""The controller-side report callback: the single MLflow writer of a training run.

Ray Train calls `after_report` in the Train controller (on the driver's node) once all workers
have reported. Rank 0's report carries the per-step metrics since the previous report; they are
logged to MLflow here, so workers never talk to MLflow and a cluster's workers need no access to
the tracking store. Steps already logged are skipped (a worker group restarted from a checkpoint
recomputes the steps after it; a rerun of a killed driver picks up the high-water mark from
MLflow), so each step is logged once.

A progress event per report is appended as a JSON line to a file on the driver's node (the
controller runs there), which the driver tails to print progress without Ray's log prefixes.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ray.train import UserCallback

from hyena_platform import tracking
from hyena_platform.tracking import TrackingConfig
from hyena_platform.train.baselines import val_metrics

logger = logging.getLogger(__name__)
MAX_PENDING_ROWS = 200_000
TRAIN_KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "seq_len", "stage", "step_s", "data_s", "compute_s",
              "cpu_s", "time_s")


class ReportCallback(UserCallback):
    def __init__(self, cfg: TrackingConfig, run_id: str, *, total_steps: int, n_stages: int,
                 progress_path: str | None = None):
        self.cfg = cfg
        self.run_id = run_id
        self.total_steps = total_steps
        self.n_stages = n_stages
        self.progress_path = progress_path
        self._logged_through: int | None = None  # high-water mark of logged steps
        self._started = time.time()
        self._first_step: int | None = None
        self._pending: list[tuple[str, float, int]] = []  # rows not yet accepted by MLflow

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        head = metrics[0] if metrics else {}
        if head.get("event") == "flush":  # the loop's closing no-op report
            return
        if self._logged_through is None:
            try:
                self._logged_through = tracking.last_logged_step(self.cfg, self.run_id, "train/loss")
            except Exception as err:  # noqa: BLE001 - a tracking outage must not kill the training run
                logger.warning("MLflow unreachable (%s); assuming no step was logged yet", err)
                self._logged_through = 0
        mark = self._logged_through
        rows: list[tuple[str, float, int]] = []
        for event in head.get("events", []):
            if event.get("type") == "resumed":
                rows.append(("train/resumed_from_step", event["step"], event["step"]))
        history = [h for h in head.get("history", []) if h["step"] > mark]
        for h in history:
            rows.extend((f"train/{k}", h[k], h["step"]) for k in TRAIN_KEYS if k in h)
        if history and head.get("last_report_s") is not None:
            rows.append(("train/report_s", head["last_report_s"], history[0]["step"]))
        vals = [v for v in head.get("val", []) if v["step"] > mark]
        for v in vals:
            for key, value in val_metrics(v["loss"]).items():
                rows.append((f"val/{key}", value, v["step"]))
            rows.append(("val/seq_len", v["seq_len"], v["step"]))
        if history:
            self._logged_through = max(mark, history[-1]["step"])
        self._pending.extend(rows)
        tags = {"hyena.last_checkpoint": checkpoint.path} if checkpoint is not None else {}
        try:
            if self._pending:
                tracking.log_metrics(self.cfg, self.run_id, self._pending)
                self._pending = []
            if tags:
                tracking.set_tags(self.cfg, self.run_id, tags)
        except Exception as err:  # noqa: BLE001 - keep training; retry these rows at the next report
            del self._pending[:-MAX_PENDING_ROWS]
            logger.warning("MLflow logging failed (%s); %d metric rows kept for the next report", err,
                           len(self._pending))
        self._progress(head, metrics, history, vals, checkpoint)

    def _progress(self, head, metrics, history, vals, checkpoint) -> None:
        if not self.progress_path:
            return
        step = head.get("step", 0)
        if self._first_step is None:
            self._first_step = step
            self._started = time.time()
        elapsed = time.time() - self._started
        done = step - self._first_step
        eta = elapsed / done * (self.total_steps - step) if done > 0 else None
        last = history[-1] if history else {}
        event = {
            "event": head.get("event", "progress"), "step": step, "total_steps": self.total_steps,
            "stage": last.get("stage", head.get("stage")), "n_stages": self.n_stages, "seq_len": last.get("seq_len"),
            "loss": last.get("loss"), "tokens_per_s": last.get("tokens_per_s"), "eta_s": eta,
            "val": [{"step": v["step"], "seq_len": v["seq_len"], **val_metrics(v["loss"])} for v in vals],
            "resumed_from": [e["step"] for e in head.get("events", []) if e.get("type") == "resumed"],
            "checkpoint": checkpoint.path if checkpoint is not None else None,
            "worker_pids": [m.get("pid") for m in metrics],
            "message": head.get("message"),
            "time": time.time(),
        }
        with open(self.progress_path, "a") as f:
            f.write(json.dumps(event) + "\n")
