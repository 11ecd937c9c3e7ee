"""`hyena demo`: the platform end to end on embedded defaults, in one directory.

A local Ray started in this process, MLflow on a SQLite file in the demo directory, the bundled
V. cholerae genome: pretrain a small HyenaDNA with sequence-length warm-up (64 -> ... -> 1024)
on chrI, validate on chrII, register the model with an alias, score all of chrII with the
registered model as a Ray batch job, export a bigWig track, draw two pictures, print a summary.

Both jobs are the ordinary pretrain and score jobs built from the mappings below, so the demo
exercises exactly what `hyena pretrain` and `hyena score` run. A rerun reuses the finished
training run and the scored chunks (nothing is downloaded or sharded twice); `fresh` starts over,
deleting only the files a demo writes (see `DEMO_FILES`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from hyena_platform.config import from_mapping
from hyena_platform.progress import ScoringProgress, TrainingProgress
from hyena_platform.train.recipe import laptop_recipe

MODEL_NAME = "hyena-demo"
ALIAS = "candidate"
TRACK_REGION = ("chrII", 300_000, 305_000)  # 5 kb shown in the track picture

# The demo's pretraining job: the laptop recipe (hyena_platform.train.recipe, the same as
# jobs/pretrain_local.yaml) on chrI, held out chrII. `quick` (tests) shrinks the model and steps.
PRETRAIN: dict[str, Any] = {
    **laptop_recipe(),
    "checkpoint": {"every_steps": 100, "keep": 2, "name": "hyena-demo"},
    "tracking": {"experiment": "hyena-demo", "register_as": MODEL_NAME, "alias": ALIAS},
}
PRETRAIN["data"]["valid_chroms"] = ["chrII"]
QUICK_MODEL = {"variant": "tiny-1k", "overrides": {"d_model": 64, "d_inner": 256}}
QUICK_TRAIN = {"steps": 25, "warmup_stage_steps": 4, "log_every": 4, "val_windows": 8, "global_batch": 8,
               "micro_batch": 2, "baseline_orders": [1, 3]}

SCORE: dict[str, Any] = {
    "model": {"uri": f"models:/{MODEL_NAME}@{ALIAS}"},
    "target": {"regions": ["chrII"]},
    "window": {"size": 1024, "stride": 512},
    # Two single-threaded replicas keep both cores busy; 64 Ki-base chunks make resuming and the
    # progress lines fine-grained (17 chunks for chrII).
    "compute": {"replicas": 2, "batch_size": 16, "cpus_per_replica": 0.75, "threads_per_replica": 1},
    "output": {"track": "log_prob", "track_format": "bigwig", "bin_size": 10_000, "chunk_size": 65_536},
    "tracking": {"experiment": "hyena-demo-score"},
}


@dataclass
class DemoResult:
    workdir: Path
    tracking_uri: str
    pretrain: Any  # hyena_platform.train.launch.PretrainResult
    score: Any  # hyena_platform.score.pipeline.ScoreResult
    pictures: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        p, s = self.pretrain, self.score
        lines = [
            "",
            "HyenaDNA demo: done" + (" (training reused from an earlier run)" if p.reused else ""),
            "",
            f"Pretraining: {p.steps} steps in {len(p.stages)} stages, "
            f"{p.tokens_per_s:,.0f} tokens/s (median)" if p.tokens_per_s else f"Pretraining: {p.steps} steps",
            "Held-out (chrII) perplexity per stage beside order-k Markov baselines fitted on chrI:",
            p.table(),
            "",
            f"Registered: {p.model_uri} = {p.version_uri} (run {p.run_id})",
            f"Scoring chrII: {s.bases_scored:,} bases scored in this run"
            + (f" at {s.bases_per_s:,.0f} bases/s" if s.bases_scored else " (all chunks were already done)"),
            s.table(),
            "",
            "Outputs:",
            f"  scores (Parquet by chromosome): {s.output}",
            f"  {'track (' + (s.track.suffix[1:] if s.track else '-') + '):':31s} {s.track}",
            f"  manifest:                       {s.manifest}",
        ]
        lines += [f"  {name + ':':31s} {path}" for name, path in self.pictures.items()]
        lines += [
            f"  MLflow store:                   {self.tracking_uri}",
            "",
            "Open the MLflow UI on these runs:",
            f"  mlflow ui --backend-store-uri {self.tracking_uri} --host 127.0.0.1 --port 5000",
            "",
            "Times: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()),
        ]
        return "\n".join(lines)


def build_jobs(workdir: Path, *, quick: bool = False):
    """The demo's pretrain and score jobs, rooted in `workdir`."""
    from hyena_platform.score.config import job_from_mapping
    from hyena_platform.train.config import PretrainJob

    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    pre = copy.deepcopy(PRETRAIN)
    pre["checkpoint"]["storage_path"] = str(workdir / "runs")
    pre["tracking"]["uri"] = uri
    if quick:
        pre["model"] = copy.deepcopy(QUICK_MODEL)
        pre["train"].update(QUICK_TRAIN)
        pre["checkpoint"]["every_steps"] = 8
    score = copy.deepcopy(SCORE)
    score["output"]["path"] = str(workdir / "scores")
    score["tracking"]["uri"] = uri
    return (from_mapping(PretrainJob, pre, source="hyena demo (pretrain)"),
            job_from_mapping(score, source="hyena demo (score)"), uri)


def run_demo(workdir: str | Path = "hyena-demo", *, fresh: bool = False, quick: bool = False,
             echo: Callable[[str], None] = print) -> DemoResult:
    """Run the demo in `workdir` (locked while it runs); `fresh` first deletes what an
    earlier demo wrote there, and nothing else."""
    workdir = Path(workdir).expanduser().resolve()
    out = demo_output(workdir)
    with out.lock(job="hyena demo"):
        if fresh:
            out.clear(what="--fresh")  # only what a demo writes; refused if anything else is there
        out.claim(job="hyena demo")
        return _run_demo(workdir, quick=quick, echo=echo)


def demo_output(workdir: Path):
    """The demo's work directory as an OutputDir (hyena_platform.outputs): it owns exactly the
    files the demo writes (MLflow store and artifacts, runs, scores, plots, summary)."""
    from hyena_platform.outputs import OutputDir

    return OutputDir(str(workdir), kind="hyena-demo", owned=DEMO_FILES,
                     legacy_marker=lambda out: "mlflow.db" in out.top_level() and not out.foreign())


DEMO_FILES = ("mlflow.db", "mlflow.db-journal", "mlartifacts/**", "runs/**", "scores/**", "plots/loss.png",
              "plots/track.png", "plots/.*.png.*", "summary.txt")


def _run_demo(workdir: Path, *, quick: bool, echo: Callable[[str], None]) -> DemoResult:
    from hyena_platform import tracking
    from hyena_platform.score.pipeline import run_score
    from hyena_platform.train.launch import run_pretrain

    pre_job, score_job, uri = build_jobs(workdir, quick=quick)
    seconds: dict[str, float] = {}

    echo(f"hyena demo: working in {workdir} (local Ray, MLflow {uri}, bundled V. cholerae genome)")
    echo("[1/3] pretraining on chrI with sequence-length warm-up, validating on chrII")
    t0 = time.perf_counter()
    pre = run_pretrain(pre_job, source="hyena demo", progress=TrainingProgress(echo, indent="  "), ray_logs=False)
    seconds["pretrain"] = time.perf_counter() - t0

    echo(f"[2/3] scoring all of chrII with {pre.model_uri} (Ray Data actor pool)")
    t0 = time.perf_counter()
    scored = run_score(score_job, source="hyena demo", progress=ScoringProgress(echo, indent="  ", every_s=10.0), ray_progress=False)
    seconds["score"] = time.perf_counter() - t0

    echo("[3/3] drawing the loss curve and the score track")
    t0 = time.perf_counter()
    pictures = draw_pictures(workdir, pre, scored)
    cfg = tracking.TrackingConfig(uri=uri, experiment=pre_job.tracking.experiment).resolved()
    for path in pictures.values():
        tracking.log_artifact(cfg, pre.run_id, path, "plots")
        if scored.run_id:
            tracking.log_artifact(cfg, scored.run_id, path, "plots")
    seconds["pictures"] = time.perf_counter() - t0
    result = DemoResult(workdir, uri, pre, scored, pictures, seconds)
    (workdir / "summary.txt").write_text(result.summary() + "\n")
    return result


def draw_pictures(workdir: Path, pre, scored) -> dict[str, Path]:
    import numpy as np
    import pyarrow.dataset as pads

    from hyena_platform import tracking
    from hyena_platform.plots import plot_training, plot_track
    from hyena_platform.score.chunk_files import partition_dir

    cfg = tracking.TrackingConfig(uri=pre.tracking_uri, experiment=pre.experiment).resolved()
    train = tracking.metric_history(cfg, pre.run_id, "train/loss")
    val = tracking.metric_history(cfg, pre.run_id, "val/loss")
    starts, step = [], 0
    for stage in pre.stages:
        starts.append((step, stage.length))
        step = stage.end_step
    last = pre.stages[-1] if pre.stages else None
    baselines = {f"k={k} Markov": bits * np.log(2) for k, bits in (last.baselines if last else {}).items()}
    loss_png = plot_training(workdir / "plots" / "loss.png", train=train, val=val, stage_starts=starts,
                             baselines=baselines, title=f"{pre.model_name} v{pre.model_version}: loss by step")
    chrom, start, end = TRACK_REGION
    table = pads.dataset(str(partition_dir(scored.output, chrom)), format="parquet").to_table(
        columns=["pos", "log_prob"], filter=(pads.field("pos") >= start) & (pads.field("pos") < end))
    table = table.sort_by("pos")
    track_png = plot_track(workdir / "plots" / "track.png", chrom=chrom,
                           positions=table.column("pos").to_numpy(),
                           values=table.column("log_prob").to_numpy(zero_copy_only=False))
    return {"loss curve": loss_png, "score track": track_png}
