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

from hyena_platform.score.output import fingerprint

if TYPE_CHECKING:
    from hyena_platform.score.export import FinalizeResult
    from hyena_platform.score.pipeline import ScoreResult
    from hyena_platform.score.plan import ScorePlan


def tracking_start(plan: ScorePlan, root: Path) -> tuple[Any, str]:
    from hyena_platform import tracking

    cfg = plan.job.tracking.config()
    key = f"score:{root}:{fingerprint(plan.identity)}"
    existing = tracking.find_run(cfg, key)
    m = plan.model
    tags = {"hyena.job": "score", "hyena.output": str(root), "hyena.model_uri": m.resolved_uri,
            "hyena.model_sha256": m.sha256}
    if m.name is not None:
        tags.update({"hyena.model_name": m.name, "hyena.model_version": str(m.version)})
        if m.run_id:
            tags["hyena.model_run_id"] = m.run_id
    if existing is not None:
        run_id = existing.info.run_id
        tracking.reopen_run(cfg, run_id)
    else:
        run_id = tracking.start_run(cfg, run_key=key, run_name=f"score-{root.name}", tags=tags)
    tracking.set_tags(cfg, run_id, tags)
    params = tracking.flatten(plan.job.to_dict())
    params.update({"window.resolved_size": plan.window, "window.resolved_stride": plan.stride,
                   "model.resolved_uri": m.resolved_uri, "bases": plan.bases, "chunks": len(plan.chunks)})
    tracking.log_params(cfg, run_id, params)
    if m.name is not None:
        tracking.link_scoring_run(cfg, run_id, m.name, m.version, output=str(root))
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
            total_scored += s.scored
            total_lp += s.sum_log_prob
    if total_scored:
        mll = total_lp / total_scored
        rows += [("mean_log_likelihood", mll, 0), ("perplexity", math.exp(-mll), 0)]
    if result.chunks_scored:
        rows.append(("bases_per_s", result.bases_per_s, 0))
    rows += [(k, v, 0) for k, v in result.timings.items()]
    tracking.log_metrics(cfg, run_id, rows)
    tracking.log_artifact(cfg, run_id, result.manifest)
    if fin.bins is not None:
        tracking.log_artifact(cfg, run_id, fin.bins)
    tracking.end_run(cfg, run_id, "FINISHED")
