"""What the demo found, in plain words: each number with what it means."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class DemoResult:
    workdir: Path
    tracking_uri: str
    pretrain: Any  # train.result.PretrainResult
    finetune: Any  # finetune.launch.FinetuneResult
    score: Any  # score.result.ScoreResult of the language model (log P, bits saved)
    score_genes: Any  # ScoreResult of the gene head (class probabilities)
    vep: Any  # vep.pipeline.VepResult
    embed: Any  # embed.pipeline.EmbedResult
    embedding_shape: tuple[int, int]
    embedding_cosine: float
    generated: Any  # demo.steps.Generated
    confusion: np.ndarray  # gene head on chrII per base: rows true, columns predicted
    labels: tuple[str, ...]
    pictures: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return "\n".join(["", "HyenaDNA demo: done", "", *self._pretraining(), "", *self._finetuning(), "",
                          *self._scoring(), "", *self._variants(), "", *self._embed_generate(), "",
                          *self._outputs(), "", "Times: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items())])

    def _pretraining(self) -> list[str]:
        p = self.pretrain
        last = p.stages[-1] if p.stages else None
        lines = [f"1. Pretraining on chrI with sequence-length warm-up: {p.steps} steps in {len(p.stages)} stages"
                 + (f", {p.tokens_per_s:,.0f} tokens/s" if p.tokens_per_s else "")
                 + (" (reused: trained by an earlier run)" if p.reused else ""),
                 "   Held-out perplexity on chrII (never trained on) per stage, beside order-k Markov chains counted",
                 "   on chrI. Perplexity = 2^(bits per base): 4 is a uniform guess among A, C, G, T; lower is better;",
                 "   a model below every k-mer column predicts bases better than k-mer counts do.",
                 *("   " + row for row in p.table().splitlines())]
        if last is not None and last.baselines and last.val_bits_per_base is not None:
            k, bits = min(last.baselines.items(), key=lambda kv: kv[1])
            gap = bits - last.val_bits_per_base
            lines.append(f"   Final: model {last.val_bits_per_base:.4f} bits/base vs the best chain (k={k}) {bits:.4f}: "
                         f"the model is {abs(gap):.4f} bits/base {'better' if gap > 0 else 'worse'}.")
        lines.append(f"   Registered: {p.model_uri} = {p.version_uri} (MLflow run {p.run_id})")
        return lines

    def _finetuning(self) -> list[str]:
        f = self.finetune
        return [f"2. Gene annotation head: every base is noncoding, CDS+ or CDS- (Prodigal's gene calls); {f.steps} "
                "steps on chrI windows" + (" (reused)" if f.reused else ""),
                "   from the pretrained model, tested on chrII. MCC (the selection metric, *) is 0 for a constant",
                "   or random guess and 1 for perfect; macro-F1 averages the three classes; the k-mer columns are a",
                "   logistic regression on k-mer counts of the bases around each base, fitted on the same windows:",
                "   the bar to beat.",
                *("   " + row for row in f.table().splitlines()),
                *self._finetuning_verdict(),
                f"   Registered: {f.model_uri} = {f.version_uri}, lineage: fine-tuned from "
                f"{self._base_of_finetune()} (version tags base_model_*)"]

    def _finetuning_verdict(self) -> list[str]:
        """The test metric of the head beside its baseline's, in words."""
        f = self.finetune
        model = (f.model_metrics.get("test") or {}).get(f.metric)
        bar = (f.baseline_metrics.get("test") or {}).get(f.metric)
        if model is None or bar is None:
            return []
        gap = model - bar
        verdict = "beats" if gap > 0 else "does not beat"
        if f.paired is not None:  # the paired interval says whether the gap is more than the test split's noise
            verdict = ("beats" if f.paired.low > 0 else "is below" if f.paired.high < 0 else
                       "is level (within the noise of the test split) with")
        return [f"   On chrII (never trained on) the head's {f.metric.upper()} is {model:.4f}, the k-mer baseline's "
                f"{bar:.4f}: the head {verdict} its baseline ({gap:+.4f})."]

    def _base_of_finetune(self) -> str:
        return self.pretrain.version_uri

    def _scoring(self) -> list[str]:
        s, g = self.score, self.score_genes
        chrom = s.chromosomes[0]
        base = s.baseline or {}
        m = self.confusion
        accuracy = float(np.trace(m) / m.sum()) if m.sum() else math.nan
        coding = [i for i, name in enumerate(self.labels) if name != "noncoding"]
        recall = float(m[np.ix_(coding, coding)].sum() / m[coding].sum()) if m[coding].sum() else math.nan
        lines = [f"3. Scoring {chrom['name']} ({chrom['bases']:,} bases, {chrom['scored_bases']:,} scored) with both models:",
                 f"   language model: mean log P {chrom['mean_log_likelihood']:.4f} nats per base = perplexity "
                 f"{chrom['perplexity']:.4f}.",
                 f"   bits saved over the order-{base.get('order')} k-mer chain (counted on {', '.join(base.get('fit_on', []))},"
                 f" order chosen by {base.get('chosen_by')}):",
                 f"   {chrom.get('mean_bits_saved', math.nan):+.4f} bits per base on average; positive: the model predicts"
                 " the bases better than the chain; the track shows where.",
                 f"   gene head, per base over {chrom['name']} (its test chromosome): accuracy {accuracy:.4f}, coding bases "
                 f"called coding (either strand) {recall:.4f}."]
        lines.append(f"   tracks: {', '.join(str(p) for p in [*s.tracks.values(), *g.tracks.values()])}")
        return lines

    def _variants(self) -> list[str]:
        v = self.vep
        skipped = ", ".join(f"{k} {n}" for k, n in sorted(v.reasons.items())) or "none"
        lines = [f"   variant effects: {v.records} VCF records ({v.rows} ALT alleles): {v.scored} scored, skipped: {skipped}.",
                 "   score = log P(alt haplotype) - log P(ref haplotype), natural log, mean of both strands: below 0, the",
                 "   model finds the variant's sequence less likely than the reference's."]
        top = _strongest_variant(v.parquet)
        if top:
            lines.append(f"   strongest: {top}")
        lines.append(f"   annotated VCF: {v.vcf}")
        return lines

    def _embed_generate(self) -> list[str]:
        n, d = self.embedding_shape
        gen = self.generated
        return [f"4. Embeddings: {n} regions (the first genes of chrII, up to 1 kb each) -> {n} x {d} vectors (mean of the "
                f"final layer);", f"   mean cosine similarity between them {self.embedding_cosine:.4f} ({self.embed.output}).",
                f"   Generation: {len(gen.bases)} bases after {gen.prompt} (seed 0): mean log-likelihood "
                f"{gen.mean_log_likelihood:.4f} per base (perplexity {math.exp(-gen.mean_log_likelihood):.3f});",
                f"   GC {gen.gc:.3f} (prompt {gen.prompt_gc:.3f}). {gen.path}",
                f"   {gen.bases[:80]}{'...' if len(gen.bases) > 80 else ''}"]

    def _outputs(self) -> list[str]:
        store = self.tracking_uri
        lines = ["5. Pictures:", *(f"   {name + ':':17s} {path}" for name, path in self.pictures.items()),
                 "6. Look closer:",
                 "   MLflow UI on every run of this demo:",
                 f"     mlflow ui --backend-store-uri {store} --host 127.0.0.1 --port 5000",
                 "   Serve the registered language model over HTTP (same numbers as its predict):",
                 f"     MLFLOW_TRACKING_URI={store} mlflow models serve -m {self.pretrain.model_uri} "
                 "--env-manager local --host 127.0.0.1 --port 5001",
                 "     curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d '{\"dataframe_split\": "
                 "{\"columns\": [\"sequence\"], \"data\": [[\"AGGGTCATTAAATATATATAAAGATC\"]]}}'",
                 f"   (the gene head likewise: -m {self.finetune.model_uri})"]
        return lines


def _strongest_variant(parquet: Path) -> str | None:
    import pyarrow.dataset as pads

    table = pads.dataset(str(parquet), format="parquet").to_table(columns=["chrom", "pos", "id", "ref", "alt", "score"])
    rows = [r for r in table.to_pylist() if r["score"] is not None]
    if not rows:
        return None
    r = min(rows, key=lambda r: r["score"])
    return f"{r['id']} {r['chrom']}:{r['pos']} {r['ref']}>{r['alt']} score {r['score']:.3f}"
