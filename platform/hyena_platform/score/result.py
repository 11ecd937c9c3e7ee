"""What a scoring job returns: where its outputs are, per-chromosome summaries and timings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ScoreResult:
    output: Path
    manifest: Path
    track: Path | None
    bins: Path | None
    model_uri: str
    chromosomes: list[dict[str, Any]]
    chunks_total: int
    chunks_scored: int  # in this run (the rest were already on disk)
    bases_scored: int  # positions scored in this run
    timings: dict[str, float]
    run_id: str | None = None
    tracking_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tracks: dict[str, Path] = field(default_factory=dict)  # column -> track file (track is the first)
    baseline: dict[str, Any] | None = None  # the k-mer chain of bits_saved (score.kmer.KmerChain.describe)

    @property
    def bases_per_s(self) -> float:
        wall = self.timings.get("score_wall_s", 0.0)
        return self.bases_scored / wall if wall > 0 else float("nan")

    def table(self) -> str:
        lines = [f"{'chromosome':14s} {'bases':>12s} {'scored':>12s} {'mean log P':>11s} {'perplexity':>10s}"]
        for c in self.chromosomes:
            mll = c.get("mean_log_likelihood")
            ppl = c.get("perplexity")
            # None: nothing scored (an all-N region, as every genome has): shown as "-"
            lines.append(f"{c['name']:14s} {c['bases']:>12,d} {c['scored_bases']:>12,d} "
                         f"{'-' if mll is None else format(mll, '.4f'):>11} "
                         f"{'-' if ppl is None else format(ppl, '.4f'):>10}")
        return "\n".join(lines)
