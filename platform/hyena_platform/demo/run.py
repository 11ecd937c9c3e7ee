"""`hyena demo`: every use of the model card on the bundled genome, in one directory.

A local Ray started in this process, MLflow on a SQLite file in the demo directory, the bundled
V. cholerae genome, each step an ordinary job (hyena_platform.demo.jobs, .steps):

1. pretrain a small HyenaDNA on chrI with sequence-length warm-up (64 -> 1024), validating on
   chrII beside k-mer baselines; register it;
2. call genes with Prodigal and fine-tune the per-base gene-annotation head from the registered
   model beside its k-mer baseline; register it with its lineage;
3. score all of chrII with both (log P, bits saved over the best k-mer chain, coding probability
   per strand: Parquet and bigWig) and the effects of 82 real variants (VCF);
4. embed a few genes and generate a continuation of chrII;
5. draw the loss curve, a genome-browser panel and the gene head's confusion matrix;
6. write a summary that says what each number means, with the commands to open MLflow and serve.

A rerun reuses every finished step (training runs by their config, batch outputs by their
fingerprint, the gene calls by their file); `fresh` starts over, deleting only the files a demo
writes (`DEMO_FILES`). `quick` shrinks every size for a smoke run in seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from hyena_platform.demo import pictures, steps
from hyena_platform.demo.jobs import build_jobs
from hyena_platform.demo.summary import DemoResult

DEMO_FILES = ("mlflow.db", "mlflow.db-journal", "mlartifacts/**", "runs/**", "scores/**", "scores-genes/**",
              "vep/**", "embeddings/**", "genes/**", "generated.fa", "plots/loss.png", "plots/track.png",
              "plots/browser.png", "plots/confusion.png", "plots/.*.png.*", "summary.txt")
STEPS = 7
VCF = Path(__file__).resolve().parents[1] / "assets" / "vep" / "o395_vs_n16961_chrII.vcf"  # 82 real chrII records


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
    files the demo writes."""
    from hyena_platform.outputs import OutputDir

    return OutputDir(str(workdir), kind="hyena-demo", owned=DEMO_FILES,
                     legacy_marker=lambda out: "mlflow.db" in out.top_level() and not out.foreign())


class _Clock:
    """Numbered step headers and wall seconds per step."""

    def __init__(self, echo: Callable[[str], None]):
        self.echo, self.seconds, self.n, self.t0 = echo, {}, 0, None
        self.name = None

    def step(self, name: str, text: str) -> None:
        self.stop()
        self.n += 1
        self.name, self.t0 = name, time.perf_counter()
        self.echo(f"[{self.n}/{STEPS}] {text}")

    def stop(self) -> None:
        if self.name is not None:
            self.seconds[self.name] = time.perf_counter() - self.t0
            self.name = None


def _run_demo(workdir: Path, *, quick: bool, echo: Callable[[str], None]) -> DemoResult:
    clock = _Clock(echo)
    echo(f"hyena demo: working in {workdir} (local Ray, MLflow sqlite:///{workdir / 'mlflow.db'}, "
         "bundled V. cholerae genome)" + (" -- quick: toy sizes, the numbers mean nothing" if quick else ""))
    clock.step("genes", "gene calls: Prodigal (pyrodigal) on the bundled genome, the fine-tuning labels")
    genes_bed, genes = steps.gene_calls(workdir)
    jobs = build_jobs(workdir, genes_bed=genes_bed, regions_bed=steps.embed_regions(workdir, genes), vcf=VCF,
                      quick=quick)
    echo(f"  {len(genes):,} genes -> {genes_bed}")
    clock.step("pretrain", "pretraining on chrI with sequence-length warm-up, validating on chrII")
    pre = steps.pretrain(jobs.pretrain, echo)
    clock.step("finetune", f"fine-tuning the gene-annotation head from {pre.model_uri}, beside its k-mer baseline")
    fine = steps.finetune(jobs.finetune, echo)
    clock.step("score", f"scoring chrII with {pre.model_uri} (log P, bits saved over k-mers) and {fine.model_uri}")
    lm = steps.score(jobs.score_lm, echo)
    gene_scores = steps.score(jobs.score_genes, echo)
    clock.step("vep", "variant effects of real chrII variants (O395, Inaba, H1 vs N16961)")
    vep = steps.variant_effects(jobs.vep, echo)
    clock.step("embed_generate", "embedding genes of chrII and generating a continuation")
    emb = steps.embed(jobs.embed, echo)
    ids, matrix = steps.embedding_matrix(emb)
    gen = steps.generate(pre.model_uri, jobs.tracking_uri, workdir, **_generate_args(jobs.generate))
    clock.step("pictures", "drawing the loss curve, a genome-browser panel and the confusion matrix")
    labels = tuple(fine_labels(fine))
    matrix_cm = steps.coding_confusion(gene_scores.output, genes, "chrII", labels)
    drawn = {"loss curve": pictures.loss_curve(workdir, pre),
             "genome browser": pictures.browser_panel(workdir, lm.output, gene_scores.output, genes,
                                                      (lm.baseline or {}).get("order")),
             "confusion matrix": pictures.confusion(workdir, matrix_cm, labels,
                                                    "gene head on chrII (test), per base")}
    steps.log_pictures(jobs.tracking_uri, [(jobs.pretrain.tracking.experiment, pre.run_id),
                                           (jobs.finetune.tracking.experiment, fine.run_id),
                                           (jobs.score_lm.tracking.experiment, lm.run_id)], drawn)
    clock.stop()
    result = DemoResult(workdir, jobs.tracking_uri, pre, fine, lm, gene_scores, vep, emb, matrix.shape,
                        steps.mean_cosine(matrix), gen, matrix_cm, labels, drawn, clock.seconds)
    from hyena_platform.outputs import atomic_write

    atomic_write(workdir / "summary.txt", result.summary() + "\n")
    return result


def _generate_args(spec: dict) -> dict:
    return {"prompt": spec["prompt"], "new_bases": spec["new_bases"], "seed": spec["seed"],
            "temperature": spec["temperature"]}


def fine_labels(fine) -> list[str]:
    """The gene head's class names, in its output order (noncoding, CDS+, CDS- or as trained)."""
    import json

    from hyena_platform import tracking

    info = tracking.model_version(fine.version_uri, tracking_uri=fine.tracking_uri)
    return json.loads(info.tags["label_names"])
