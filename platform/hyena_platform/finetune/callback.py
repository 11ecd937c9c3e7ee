"""The controller-side report callback of a fine-tuning run: the single MLflow writer.

Like pretraining's (train.callback): workers never talk to MLflow; rank 0's reports (train.loop
.Reporter) carry the per-step rows, the validation metrics and, at the end, the test metrics of
the best model;
steps already logged are skipped on resume; a JSON line per report feeds the driver's progress.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ray.train import UserCallback

from hyena_platform import tracking
from hyena_platform.tracking import TrackingConfig

logger = logging.getLogger(__name__)
TRAIN_KEYS = ("loss", "lr", "grad_norm", "examples_per_s", "step_s", "cpu_s", "epoch", "tokens")


class FinetuneCallback(UserCallback):
    def __init__(self, cfg: TrackingConfig, run_id: str, *, total_steps: int, metric: str,
                 progress_path: str | None = None):
        self.cfg, self.run_id, self.total_steps, self.metric = cfg, run_id, total_steps, metric
        self.progress_path = progress_path
        self._marks: dict[str, int] | None = None
        self._started = time.time()

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        head = metrics[0] if metrics else {}
        if head.get("event") == "flush":
            return
        rows = self._rows(head)
        tags = {"hyena.last_checkpoint": checkpoint.path} if checkpoint is not None else {}
        if head.get("best_value") is not None:
            tags.update({"hyena.best_step": head["best_step"], f"hyena.best_val_{self.metric}": head["best_value"]})
        try:
            tracking.log_metrics(self.cfg, self.run_id, rows)
            if tags:
                tracking.set_tags(self.cfg, self.run_id, tags)
        except Exception as err:  # noqa: BLE001 - a tracking outage must not kill the training run
            logger.warning("MLflow logging failed (%s); %d metric rows dropped", err, len(rows))
        self._progress(head, checkpoint)

    def _rows(self, head: dict) -> list[tuple[str, float, int]]:
        if self._marks is None:  # what a previous attempt already logged
            self._marks = {k: tracking.last_logged_step(self.cfg, self.run_id, k)
                           for k in ("train/loss", f"val/{self.metric}")}
        events = head.get("events", [])
        rows = [("train/resumed_from_step", e["step"], e["step"]) for e in events if e.get("type") == "resumed"]
        rows += [(f"probe/{k}", e[k], 0) for e in events if e.get("type") == "probe" for k in ("C", "rows")]
        for h in head.get("history", []):
            if h["step"] > self._marks["train/loss"]:
                rows += [(f"train/{k}", h[k], h["step"]) for k in TRAIN_KEYS if k in h]
                self._marks["train/loss"] = h["step"]
        for v in head.get("val", []):
            if v["step"] > self._marks[f"val/{self.metric}"]:
                rows += [(f"val/{k}", x, v["step"]) for k, x in v.items() if k != "step"]
                self._marks[f"val/{self.metric}"] = v["step"]
        for section in ("test", "best_valid"):
            rows += [(f"{section}/{k}", x, head["step"]) for k, x in (head.get(section) or {}).items()]
        return rows

    def _progress(self, head: dict, checkpoint: Any) -> None:
        if not self.progress_path:
            return
        history = head.get("history") or []
        event = {"event": head.get("event"), "step": head.get("step"), "total_steps": self.total_steps,
                 "loss": history[-1]["loss"] if history else None,
                 "epoch": history[-1]["epoch"] if history else None,
                 "examples_per_s": history[-1]["examples_per_s"] if history else None,
                 "val": head.get("val") or [], "test": head.get("test"), "metric": self.metric,
                 "best_value": head.get("best_value"), "stopped_early": head.get("stopped_early"),
                 "message": head.get("message"), "elapsed_s": time.time() - self._started,
                 "resumed_from": [e["step"] for e in head.get("events", []) if e.get("type") == "resumed"],
                 "probe": next((e for e in head.get("events", []) if e.get("type") == "probe"), None),
                 "checkpoint": checkpoint.path if checkpoint is not None else None}
        with open(self.progress_path, "a") as f:
            f.write(json.dumps(event) + "\n")
