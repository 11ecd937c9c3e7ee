"""`hyena sweep SWEEP.yaml`: find a pretraining recipe with real runs, not hand-tuned constants.

A sweep file names a pretraining job and the ``--set`` overrides of each trial (a grid, a list,
or both); every trial is an ordinary `run_pretrain` of that job with its overrides, so it has its
own Ray Train run (``checkpoint.name`` = ``<sweep>-t<NN>``), its own MLflow run (a child of the
sweep's parent run: ``mlflow.parentRunId``) and its own registered version (alias
``<sweep>-t<NN>``). The sweep then ranks the trials by how far their final held-out bits per base
fall below the best k-mer (Markov) baseline on the same windows, prints the table, logs it on the
parent run and points the alias ``<sweep>-best`` at the best trial's version.

A plain loop of jobs, one after another: on a laptop a trial already uses every core, and each
trial stays resumable on its own (rerunning the sweep reuses the finished trials).

    kind: sweep
    job: pretrain_local.yaml          # relative to this file
    set: [train.steps=120]            # applied to every trial
    grid: {train.lr: [1.0e-3, 3.0e-3]}
    trials: [{model.overrides.d_model: 128}]
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from pydantic import Field

from hyena_platform.config import apply_overrides, from_mapping, kind_field, load_yaml_mapping, section
from hyena_platform.errors import ConfigError

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests the trials under the sweep
TRIAL_TAG = "hyena.sweep.trial"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@section
class SweepJob:
    """A sweep: one pretraining job, many override sets."""

    kind: Literal["sweep"] = kind_field("sweep")
    job: str = Field("", description="the pretraining job file every trial runs, relative to this sweep file")
    name: str | None = Field(None, description=(
        "parent MLflow run name, prefix of the trials' run names and aliases; null = the sweep file's stem"))
    set: list[str] = Field(default_factory=list, description="KEY=VALUE overrides applied to every trial")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description=(
        "dotted key -> list of values; one trial per combination"))
    trials: list[dict[str, Any]] = Field(default_factory=list, description=(
        "more trials after the grid's, each a mapping {dotted key: value}"))

    def validate(self) -> None:
        if not self.job:
            raise ValueError("set job: the pretraining job file that every trial runs (e.g. pretrain_local.yaml)")
        if self.name is not None and not _NAME.fullmatch(self.name):
            raise ValueError(f"name={self.name!r}: use a letter first, then letters, digits, '_' and '-'")
        for key, values in self.grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list of values, got {values!r}")
        for i, trial in enumerate(self.trials):
            if not isinstance(trial, dict) or not trial:
                raise ValueError(f"trials[{i}] must be a non-empty mapping {{dotted.key: value}}, got {trial!r}")
        for item in self.set:
            if "=" not in item:
                raise ValueError(f"set: {item!r} is not KEY=VALUE (for example train.steps=200)")
        if not self.grid and not self.trials:
            raise ValueError("no trials: give grid ({dotted.key: [values]}) and/or trials ([{dotted.key: value}])")

    def trial_overrides(self) -> list[dict[str, Any]]:
        """Every grid combination (in file order), then the listed trials."""
        keys = list(self.grid)
        combos = [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())] if keys else []
        return combos + [dict(t) for t in self.trials]


@dataclass(frozen=True)
class Trial:
    number: int  # 1-based
    overrides: dict[str, Any]  # this trial's own settings (the sweep's `set` not repeated)
    job: Any  # the validated PretrainJob
    name: str  # checkpoint.name and registered alias of this trial

    def label(self) -> str:
        return ", ".join(f"{k}={_yaml_value(v)}" for k, v in self.overrides.items())


def _yaml_value(value: Any) -> str:
    """A --set value: JSON is YAML, and keeps a string a string (`"1e-3"` vs 1e-3)."""
    return value if isinstance(value, str) and not _looks_typed(value) else json.dumps(value)


def _looks_typed(text: str) -> bool:
    import yaml

    try:
        return not isinstance(yaml.safe_load(text), str)
    except yaml.YAMLError:
        return False


def load_sweep(path: str | Path, overrides: Sequence[str] = ()) -> SweepJob:
    """Read and validate a sweep file, and every trial's job with its overrides (nothing runs)."""
    sweep = from_mapping(SweepJob, apply_overrides(load_yaml_mapping(path), overrides, source=str(path)),
                         source=str(path))
    plan_trials(sweep, path)
    return sweep


def sweep_name(sweep: SweepJob, path: str | Path) -> str:
    if sweep.name:
        return sweep.name
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", Path(path).stem)
    return stem if _NAME.fullmatch(stem) else f"sweep-{stem}"


def plan_trials(sweep: SweepJob, path: str | Path) -> list[Trial]:
    """Each trial's validated pretraining job; ConfigError naming the sweep file and the trial."""
    from hyena_platform.train.config import load_job

    job_path = (Path(path).parent / sweep.job)
    if not job_path.is_file():
        raise ConfigError(f"{path}: job: {sweep.job!r} not found (looked for {job_path}); give the pretraining "
                          "job file relative to the sweep file")
    name = sweep_name(sweep, path)
    trials = []
    for number, own in enumerate(sweep.trial_overrides(), start=1):
        trial_name = f"{name}-t{number:02d}"
        sets = [*sweep.set, *(f"{k}={_yaml_value(v)}" for k, v in own.items()),
                f"checkpoint.name={trial_name}", f"tracking.alias={trial_name}"]
        try:
            job = load_job(job_path, sets)
        except ConfigError as err:
            raise ConfigError(f"{path}: trial {number} ({', '.join(f'{k}={v}' for k, v in own.items())}): {err}") from None
        if job.kind != "pretrain":
            raise ConfigError(f"{path}: job: {sweep.job} is a {job.kind} job; a sweep runs pretrain jobs")
        trials.append(Trial(number, own, job, trial_name))
    return trials


@dataclass(frozen=True)
class TrialResult:
    trial: Trial
    run_id: str
    version_uri: str
    steps: int
    bits_per_base: float  # final held-out, at the last stage's length
    best_kmer: tuple[int, float]  # (order, bits per base) of the best Markov baseline, same windows
    wall_s: float
    reused: bool

    @property
    def perplexity(self) -> float:
        return 2 ** self.bits_per_base

    @property
    def margin(self) -> float:
        """Bits per base below the best k-mer chain (positive: the model knows more than k-mers)."""
        return self.best_kmer[1] - self.bits_per_base


def trial_result(trial: Trial, result: Any, wall_s: float) -> TrialResult:
    final = result.stages[-1]
    bpb = final.val_bits_per_base if final.val_bits_per_base is not None else math.nan
    best = min(final.baselines.items(), key=lambda kv: kv[1]) if final.baselines else (-1, math.nan)
    return TrialResult(trial, result.run_id, result.version_uri, result.steps, bpb, best, wall_s, result.reused)


def ranked(results: Sequence[TrialResult]) -> list[TrialResult]:
    """Best first: the largest margin below the best k-mer baseline (unmeasured trials last)."""
    return sorted(results, key=lambda r: (math.isnan(r.margin), -r.margin if not math.isnan(r.margin) else 0))


def table(results: Sequence[TrialResult]) -> str:
    """The ranked trials: held-out perplexity and bits per base beside the best k-mer chain."""
    lines = [f"{'rank':>4} {'trial':>5} {'steps':>6} {'ppl':>7} {'bits/base':>9} {'best k-mer':>12} "
             f"{'margin':>8} {'wall s':>7}  overrides"]
    for rank, r in enumerate(ranked(results), start=1):
        k, kbits = r.best_kmer
        lines.append(f"{rank:>4} {r.trial.number:>5} {r.steps:>6} {r.perplexity:7.4f} {r.bits_per_base:9.4f} "
                     f"{f'k={k} {kbits:.4f}':>12} {r.margin:+8.4f} {r.wall_s:7.0f}  {r.trial.label()}"
                     + ("  (reused)" if r.reused else ""))
    return "\n".join(lines)


@dataclass(frozen=True)
class SweepResult:
    name: str
    parent_run_id: str
    tracking_uri: str
    results: tuple[TrialResult, ...]
    best_uri: str  # models:/NAME@<sweep>-best

    @property
    def best(self) -> TrialResult:
        return ranked(self.results)[0]

    def table(self) -> str:
        return table(self.results)


def run_sweep(sweep: SweepJob, path: str | Path, *, fresh: bool = False,
              progress: Callable[[str], None] = print, trial_progress: Any = None) -> SweepResult:
    """Run every trial (a finished one is reused unless `fresh`), then rank and record them."""
    from hyena_platform import tracking
    from hyena_platform.train.launch import run_pretrain

    trials = plan_trials(sweep, path)
    name = sweep_name(sweep, path)
    tcfg = trials[0].job.tracking.resolved()
    parent = open_parent_run(tcfg, sweep, path, name, fresh=fresh)
    results = []
    try:
        for trial in trials:
            progress(f"trial {trial.number}/{len(trials)} ({trial.name}): {trial.label()}")
            t0 = time.perf_counter()
            result = run_pretrain(trial.job, source=str(path), fresh=fresh, progress=trial_progress)
            tracking.set_tags(tcfg, result.run_id, {PARENT_TAG: parent, TRIAL_TAG: trial.number})
            r = trial_result(trial, result, time.perf_counter() - t0)
            results.append(r)
            tracking.log_metrics(tcfg, parent, [("trial/bits_per_base", r.bits_per_base, trial.number),
                                                ("trial/margin_bits_per_base", r.margin, trial.number)])
            progress(f"trial {trial.number}: held-out {r.bits_per_base:.4f} bits/base (perplexity "
                     f"{r.perplexity:.4f}), {r.margin:+.4f} vs the best k-mer chain (k={r.best_kmer[0]})")
    except BaseException:
        tracking.end_run(tcfg, parent, "FAILED")
        raise
    return finish_sweep(tcfg, parent, name, results)


def open_parent_run(tcfg, sweep: SweepJob, path: str | Path, name: str, *, fresh: bool) -> str:
    """The sweep's parent MLflow run: reopened on a rerun of the same sweep, new with `fresh`."""
    from hyena_platform import tracking
    from hyena_platform.config import to_dict

    key = f"sweep:{Path(path).resolve()}:{name}"
    existing = tracking.find_run(tcfg, key)
    if existing is not None and fresh:
        tracking.detach_run(tcfg, existing.info.run_id)
        existing = None
    if existing is not None:
        tracking.reopen_run(tcfg, existing.info.run_id)
        return existing.info.run_id
    run_id = tracking.start_run(tcfg, run_key=key, run_name=name, tags={"hyena.job": str(path), "hyena.kind": "sweep"})
    tracking.log_params(tcfg, run_id, tracking.flatten({"sweep": to_dict(sweep)}))
    return run_id


def finish_sweep(tcfg, parent: str, name: str, results: list[TrialResult]) -> SweepResult:
    """Tag the parent with the best trial, log the table, point ``<name>-best`` at its version."""
    from hyena_platform import tracking

    best = ranked(results)[0]
    text = table(results)
    tracking.log_text(tcfg, parent, text + "\n", "sweep.txt")
    tracking.set_tags(tcfg, parent, {"hyena.sweep.best_trial": best.trial.number, "hyena.sweep.best_run": best.run_id,
                                     "hyena.sweep.best_bits_per_base": f"{best.bits_per_base:.6g}",
                                     "hyena.sweep.best_overrides": best.trial.label()})
    model_name, version = best.version_uri.removeprefix("models:/").rsplit("/", 1)
    alias = f"{name}-best"
    tracking.set_alias(tcfg, model_name, alias, int(version))
    tracking.end_run(tcfg, parent, "FINISHED")
    return SweepResult(name, parent, tcfg.uri, tuple(results), f"models:/{model_name}@{alias}")
