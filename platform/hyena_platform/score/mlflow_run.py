"""The MLflow scoring run, through hyena_platform.tracking (the only module importing mlflow).

One run per output directory and fingerprint: a resumed job reopens the run it started. The run
is tagged with the model version (``hyena.model_name``, ``hyena.model_version``, and the run
that logged the version) and the version gets a ``hyena.scoring_run.<run_id>`` tag back. At the
end it holds per-chromosome mean log-likelihood, perplexity and coverage, throughput, the time
split, and the manifest and bins as artifacts.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hyena_platform.result_set import fingerprint
from hyena_platform.score.result import ScoreResult

if TYPE_CHECKING:
    from hyena_platform.score.finalize import FinalizeResult
    from hyena_platform.score.plan import ScorePlan


def tracking_start(plan: ScorePlan, root: Path) -> tuple[Any, str]:
    params = {"window.resolved_size": plan.window, "window.resolved_stride": plan.stride,
              "bases": plan.bases, "chunks": len(plan.chunks)}
    if plan.kmer is not None:  # the chain behind bits_saved: its order and what it was counted on
        params.update({"baseline.resolved_order": plan.kmer.order, "baseline.resolved_fit_on": ",".join(plan.kmer.fit_on),
                       "baseline.resolved_fit_bases": plan.kmer.fit_bases, "baseline.chosen_by": plan.kmer.chosen_by})
    return start_job_run(plan.job.tracking.config(), "score", root, fingerprint(plan.identity), plan.model,
                         plan.job.to_dict(), params, link_kind="scoring")


def start_job_run(cfg: Any, kind: str, root: Path, fp: str, model: Any, config: dict[str, Any],
                  params: dict[str, Any], *, link_kind: str) -> tuple[Any, str]:
    """The MLflow run of a batch job (`kind`: score, vep, ...) writing `root` with fingerprint
    `fp`: reopened when the same job resumes; tagged with the model's lineage (version, the run
    that logged it, weights hash) and linked back from the model version; the job's config and
    `params` logged as parameters."""
    from hyena_platform import tracking

    key = f"{kind}:{root}:{fp}"
    existing = tracking.find_run(cfg, key)
    tags = {"hyena.job": kind, "hyena.output": str(root), "hyena.model_uri": model.resolved_uri,
            "hyena.model_sha256": model.sha256}
    if model.name is not None:
        tags.update({"hyena.model_name": model.name, "hyena.model_version": str(model.version)})
        if model.run_id:
            tags["hyena.model_run_id"] = model.run_id
    if existing is not None:
        run_id = existing.info.run_id
        tracking.reopen_run(cfg, run_id)
    else:
        run_id = tracking.start_run(cfg, run_key=key, run_name=f"{kind}-{root.name}", tags=tags)
    tracking.set_tags(cfg, run_id, tags)
    flat = tracking.flatten(config)
    flat.update({**params, "model.resolved_uri": model.resolved_uri})
    tracking.log_params(cfg, run_id, flat)
    if model.name is not None:
        tracking.link_scoring_run(cfg, run_id, model.name, model.version, output=str(root), kind=link_kind)
    return cfg, run_id


def _metric_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)


def tracking_finish(run: tuple[Any, str], result: ScoreResult, fin: FinalizeResult) -> None:
    from hyena_platform import tracking

    cfg, run_id = run
    rows: list[tuple[str, float, int]] = []
    total_scored, total_lp = 0, 0.0
    for s in fin.chromosomes:
        name = _metric_name(s.name)
        if s.scored:
            rows += [(f"mean_log_likelihood.{name}", s.mean_log_likelihood, 0),
                     (f"perplexity.{name}", s.perplexity, 0),
                     (f"coverage.{name}", s.bases / s.expected if s.expected else 1.0, 0)]
            if s.sum_bits_saved is not None:
                rows.append((f"mean_bits_saved.{name}", s.sum_bits_saved / s.scored, 0))
            total_scored += s.scored
            total_lp += s.sum_log_prob
    if total_scored:
        mll = total_lp / total_scored
        rows += [("mean_log_likelihood", mll, 0), ("perplexity", math.exp(-mll), 0)]
    if result.chunks_scored:
        rows.append(("bases_per_s", result.bases_per_s, 0))
    rows += [(k, v, 0) for k, v in result.timings.items()]
    for order, bits in ((result.baseline or {}).get("heldout_bits_per_base") or {}).items():
        rows.append(("baseline.heldout_bits_per_base", bits, int(order)))  # step = the chain's order
    tracking.log_metrics(cfg, run_id, rows)
    tracking.log_artifact(cfg, run_id, result.manifest)
    if fin.bins is not None:
        tracking.log_artifact(cfg, run_id, fin.bins)
    tracking.end_run(cfg, run_id, "FINISHED")
