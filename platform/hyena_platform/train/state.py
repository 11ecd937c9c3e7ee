"""Training-state checkpoints: a directory any worker can resume from. Pure torch, no Ray.

Layout (one directory per checkpoint; Ray Train merges the workers' files into it)::

    model/config.json, model/model.safetensors   the model, in our release format (rank 0)
    trainer.pt                                   optimizer, scheduler, step (rank 0)
    meta.json                                    step, stage, total steps, run facts (rank 0)
    reported.json                                the per-step metrics reported with it (rank 0)
    rank_<r>.pt                                  RNG states and data position of worker r

The model directory is exactly what ``hyena.from_pretrained`` loads, so the final checkpoint is
also the released artifact.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

MODEL_DIR = "model"
TRAINER_FILE = "trainer.pt"
META_FILE = "meta.json"
REPORTED_FILE = "reported.json"  # the metrics of the report that carried this checkpoint


@dataclass(frozen=True)
class DataPosition:
    """Where a worker is in the data: micro-batches consumed in the current stage."""

    stage: int
    micro_batches: int


def rank_file(rank: int) -> str:
    return f"rank_{rank}.pt"


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": list(random.getstate()[1]) + [random.getstate()[2]],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((3, tuple(py[:-1]), py[-1]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_shared(directory: Path, model: torch.nn.Module, optimizer, scheduler, *, step: int, meta: dict) -> None:
    """Rank 0's part: model, optimizer, scheduler and metadata."""
    model.save_pretrained(directory / MODEL_DIR)
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step},
               directory / TRAINER_FILE)
    (directory / META_FILE).write_text(json.dumps({"step": step, **meta}, indent=2) + "\n")


def save_reported(directory: Path, metrics: dict) -> None:
    """Rank 0: the per-step metrics reported with this checkpoint. Ray Train registers a
    checkpoint before the controller logs its metrics; a driver killed in between would lose
    them, so a run resumed from this checkpoint reports them again (the logger skips steps it
    already has)."""
    (directory / REPORTED_FILE).write_text(json.dumps(metrics) + "\n")


def read_reported(directory: Path) -> dict:
    path = Path(directory) / REPORTED_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def save_rank(directory: Path, rank: int, position: DataPosition) -> None:
    """Every rank's part: its RNG states and data position."""
    torch.save({"rng": rng_state(), "position": asdict(position)}, directory / rank_file(rank))


def read_meta(directory: str | Path) -> dict:
    return json.loads((Path(directory) / META_FILE).read_text())


def load_shared(directory: Path, model: torch.nn.Module, optimizer, scheduler) -> int:
    """Restore model weights, optimizer and scheduler in place; returns the step. `model` is any
    model class with `from_pretrained` (the LM, or a hyena.heads task model)."""
    loaded = type(model).from_pretrained(directory / MODEL_DIR)
    model.load_state_dict(loaded.state_dict())
    state = torch.load(directory / TRAINER_FILE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return int(state["step"])


def read_position(directory: Path, rank: int) -> DataPosition | None:
    """This rank's data position, without touching the RNG states (None if the rank is new)."""
    path = directory / rank_file(rank)
    if not path.is_file():
        return None
    return DataPosition(**torch.load(path, map_location="cpu", weights_only=True)["position"])


def load_rank(directory: Path, rank: int) -> DataPosition | None:
    """Restore this rank's RNG states; returns its data position (None if the rank is new)."""
    path = directory / rank_file(rank)
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    set_rng_state(state["rng"])
    return DataPosition(**state["position"])
