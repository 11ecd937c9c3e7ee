"""What a pretraining run leaves behind, read back from MLflow: per-stage held-out perplexity
beside the k-mer baselines, the registered version, throughput and the driver's phase times;
and the model card its registered version carries."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from hyena_platform import tracking
from hyena_platform.model_card import ModelCard
from hyena_platform.train.baselines import LN2
from hyena_platform.train.schedule import Stage

MODEL_VERSION_TAG = "hyena.model_version"  # run tag: the version registered from this run


@dataclass(frozen=True)
class StageSummary:
    index: int
    length: int
    steps: int
    end_step: int
    val_loss: float | None  # nats per token, at the stage's end, on held-out windows of its length
    baselines: dict[int, float] = field(default_factory=dict)  # order k -> bits per base, same windows

    @property
    def val_perplexity(self) -> float | None:
        return None if self.val_loss is None else math.exp(self.val_loss)

    @property
    def val_bits_per_base(self) -> float | None:
        return None if self.val_loss is None else self.val_loss / LN2


class RegisteredVersion:
    """What a job's result says about the model version it registered (or reused): its URIs.
    Needs `model_name`, `model_version` and `alias` (PretrainResult, FinetuneResult)."""

    model_name: str
    model_version: int
    alias: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}@{self.alias}"

    @property
    def version_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"


@dataclass(frozen=True)
class PretrainResult(RegisteredVersion):
    run_id: str
    run_name: str
    tracking_uri: str
    experiment: str
    model_name: str
    model_version: int
    alias: str
    checkpoint_path: str  # the final Ray Train checkpoint (model/ inside is the released format)
    storage_path: str  # the Ray Train run directory
    data_hash: str
    stages: tuple[StageSummary, ...]
    steps: int
    tokens_per_s: float | None  # median over logged steps
    reused: bool = False  # True when the run had already finished and nothing was trained
    timings: dict[str, float] = field(default_factory=dict)  # seconds per driver phase

    @property
    def final_perplexity(self) -> float | None:
        return self.stages[-1].val_perplexity if self.stages else None

    def table(self) -> str:
        """Held-out perplexity per stage beside the k-mer baselines (perplexity = 2^bits)."""
        orders = sorted({k for s in self.stages for k in s.baselines})
        head = f"{'stage':>5} {'length':>7} {'steps':>6} {'model ppl':>10} {'bits/base':>9}" + "".join(
            f" {f'k={k} ppl':>9}" for k in orders)
        lines = [head]
        for s in self.stages:
            ppl = f"{s.val_perplexity:10.4f}" if s.val_loss is not None else f"{'-':>10}"
            bpb = f"{s.val_bits_per_base:9.4f}" if s.val_loss is not None else f"{'-':>9}"
            base = "".join(f" {2 ** s.baselines[k]:9.4f}" if k in s.baselines else f" {'-':>9}" for k in orders)
            lines.append(f"{s.index:>5} {s.length:>7} {s.steps:>6} {ppl} {bpb}{base}")
        return "\n".join(lines)


def stage_summaries(cfg: tracking.TrackingConfig, run_id: str, stages: tuple[Stage, ...],
                    orders: tuple[int, ...]) -> tuple[StageSummary, ...]:
    val = dict(tracking.metric_history(cfg, run_id, "val/loss"))
    base = {k: dict(tracking.metric_history(cfg, run_id, f"baseline/order_{k}/bits_per_base")) for k in orders}
    return tuple(
        StageSummary(s.index, s.length, s.steps, s.end_step, val.get(s.end_step),
                     {k: base[k][s.end_step] for k in orders if s.end_step in base[k]})
        for s in stages
    )


def median_tokens_per_s(cfg: tracking.TrackingConfig, run_id: str) -> float | None:
    values = [v for _, v in tracking.metric_history(cfg, run_id, "train/tokens_per_s")]
    return statistics.median(values) if values else None


def reused_result(cfg, run, stages, orders: tuple[int, ...], name: str, run_key: str) -> PretrainResult:
    """The result of a run that had already finished (nothing was trained)."""
    run_id = run.info.run_id
    return PretrainResult(
        run_id=run_id, run_name=name, tracking_uri=cfg.uri, experiment=cfg.experiment,
        model_name=cfg.register_as, model_version=int(run.data.tags[MODEL_VERSION_TAG]), alias=cfg.alias,
        checkpoint_path=run.data.tags.get("hyena.last_checkpoint", ""), storage_path=run_key,
        data_hash=run.data.tags.get("hyena.data_hash", ""), stages=stage_summaries(cfg, run_id, stages, orders),
        steps=stages[-1].end_step, tokens_per_s=median_tokens_per_s(cfg, run_id), reused=True,
    )


def pretrain_card(*, title: str, model_config: dict, parameters: int, data, data_hash: str,
                  split_bases: dict[str, int], stages: tuple[StageSummary, ...], lineage: dict[str, Any],
                  example_sequence: str = "") -> ModelCard:
    """The model card of a pretrained version: the final held-out perplexity of each warm-up
    stage beside the k-mer (Markov) baselines fitted on the training split."""
    rows = []
    for s in stages:
        row: dict[str, Any] = {"stage": s.index, "length": s.length, "steps": s.steps,
                               "model perplexity": s.val_perplexity, "model bits/base": s.val_bits_per_base}
        row.update({f"k={k} perplexity": 2 ** bpb for k, bpb in sorted(s.baselines.items())})
        rows.append(row)
    source = ", ".join(data.fasta) or (f"shards {data.shards}" if data.shards else "bundled V. cholerae N16961")
    splits = {name: f"{n:,} bases" for name, n in split_bases.items()}
    rules = {"valid chromosomes": data.valid_chroms, "test chromosomes": data.test_chroms, "split BED": data.bed}
    return ModelCard(
        title=title, task="causal language model (next-base prediction), pretrained",
        architecture=model_config, parameters=parameters, data_hash=data_hash,
        data={"source": source, **{k: v for k, v in rules.items() if v}}, splits=splits,
        metrics=rows, lineage=lineage, example_sequence=example_sequence,
        metrics_note="Held-out windows of each stage's length; perplexity = 2^(bits per base). The k-mer "
                     "baselines are Markov chains of order k fitted on the training split, evaluated on the "
                     "same windows.",
    )
