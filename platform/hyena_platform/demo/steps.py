"""The demo's steps, each a small named function over an existing job function (no CLI, no
copies): what it needs in, its result out. Every job resumes or reuses by content identity
(pretraining and fine-tuning by their run's config, batch jobs by their output fingerprint), so a
rerun of the demo redoes nothing that finished."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hyena_platform.progress import EmbeddingProgress, FinetuneProgress, ScoringProgress, TrainingProgress, VariantProgress

Echo = Callable[[str], None]
INDENT = "  "


def pretrain(job, echo: Echo):
    from hyena_platform.train.launch import run_pretrain

    return run_pretrain(job, source="hyena demo", progress=TrainingProgress(echo, indent=INDENT), ray_logs=False)


def gene_calls(workdir: Path) -> tuple[Path, list[tuple[str, int, int, str]]]:
    """Prodigal's genes on the bundled genome (pyrodigal, single-genome mode) as a BED: the
    fine-tuning labels. Deterministic, so an existing file is reused as it is."""
    from hyena_platform.finetune.genes import call_genes, write_bed
    from hyena_platform.genome_assets import BUNDLED_GENOME

    path = workdir / "genes" / "vc_genes.bed"
    if not path.is_file():
        write_bed(call_genes(str(BUNDLED_GENOME)), path)
    return path, read_genes(path)


def read_genes(path: Path) -> list[tuple[str, int, int, str]]:
    rows = []
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            c = line.split("\t")
            rows.append((c[0], int(c[1]), int(c[2]), c[5]))
    return rows


def embed_regions(workdir: Path, genes: list[tuple[str, int, int, str]], n: int = 6) -> Path:
    """The regions to embed: the first `n` genes of chrII (at most 1 kb of each), as a BED."""
    from hyena_platform.outputs import atomic_write

    chosen = [g for g in genes if g[0] == "chrII"][:n]
    path = workdir / "genes" / "embed_regions.bed"
    atomic_write(path, "".join(f"{c}\t{s}\t{min(e, s + 1000)}\tgene_{c}_{s}{t}\n" for c, s, e, t in chosen))
    return path


def finetune(job, echo: Echo):
    from hyena_platform.finetune.launch import run_finetune

    return run_finetune(job, source="hyena demo", progress=FinetuneProgress(echo, indent=INDENT), ray_logs=False)


def score(job, echo: Echo):
    from hyena_platform.score.pipeline import run_score

    return run_score(job, source="hyena demo", progress=ScoringProgress(echo, indent=INDENT, every_s=10.0),
                     ray_progress=False)


def variant_effects(job, echo: Echo):
    from hyena_platform.vep.pipeline import run_vep

    return run_vep(job, source="hyena demo", progress=VariantProgress(echo, indent=INDENT), ray_progress=False)


def embed(job, echo: Echo):
    from hyena_platform.embed.pipeline import run_embed

    return run_embed(job, source="hyena demo", progress=EmbeddingProgress(echo, indent=INDENT))


@dataclass
class Generated:
    path: Path  # FASTA: the prompt's region name, then the continuation
    prompt: str  # "chrII:300000-300500"
    bases: str  # the generated bases
    mean_log_likelihood: float  # natural log per generated base, under the model (T = 1)
    gc: float  # GC fraction of the generated bases
    prompt_gc: float


def generate(model_uri: str, tracking_uri: str, workdir: Path, *, prompt: tuple[str, int, int], new_bases: int,
             seed: int, temperature: float) -> Generated:
    """Continue a stretch of chrII with the cached decoder (hyena.generation), seeded."""
    import torch

    from hyena import generation
    from hyena.tokenizer import SEP, Tokenizer
    from hyena_platform.data.fasta import fasta_reader
    from hyena_platform.genome_assets import BUNDLED_GENOME
    from hyena_platform.outputs import atomic_write
    from hyena_platform.score.plan import resolve_model

    chrom, start, end = prompt
    text = fasta_reader(str(BUNDLED_GENOME)).raw(chrom, start, end).translate(None, b"\r\n").decode().upper()
    resolved = resolve_model(model_uri, registry_uri=tracking_uri)
    ids = [SEP] + Tokenizer().encode(text)
    with torch.inference_mode():
        out = generation.generate(resolved.model, ids, new_bases, temperature=temperature, seed=seed)
    bases = Tokenizer().decode(out.sequences[0, out.prompt_length:].tolist())
    label = f"{chrom}:{start}-{end}"
    path = workdir / "generated.fa"
    atomic_write(path, f">{label}_continuation model={resolved.resolved_uri} seed={seed} temperature={temperature}\n"
                       f"{bases}\n")
    gc = lambda s: (s.count("G") + s.count("C")) / max(1, len(s))  # noqa: E731
    return Generated(path, label, bases, float(out.log_likelihoods.mean()), gc(bases), gc(text))


def embedding_matrix(result) -> tuple[list[str], np.ndarray]:
    """The embed job's rows as (ids, (n, D) float array)."""
    import pyarrow.dataset as pads

    table = pads.dataset(str(result.output / "embeddings"), format="parquet").to_table()
    ids = table.column("id").to_pylist()
    return ids, np.stack([np.asarray(v, dtype=np.float32) for v in table.column("embedding").to_pylist()])


def coding_confusion(scores_dir: Path, genes: list[tuple[str, int, int, str]], chrom: str,
                     labels: tuple[str, ...]) -> np.ndarray:
    """Per-base confusion of the gene head over the scored bases of `chrom` (the test
    chromosome): true class from the gene calls (later calls win where genes overlap, as in the
    fine-tuning labels' BED order), predicted = the most probable class."""
    import pyarrow.dataset as pads
    from sklearn.metrics import confusion_matrix

    from hyena_platform.score.chunk_files import partition_dir

    table = pads.dataset(str(partition_dir(scores_dir, chrom)), format="parquet").to_table()
    pos = table.column("pos").to_numpy()
    probs = np.stack([table.column(f"p_{name}").to_numpy(zero_copy_only=False) for name in labels], axis=1)
    ok = np.isfinite(probs).all(axis=1)
    truth = np.zeros(int(pos.max()) + 1, dtype=np.int64)
    index = {name: i for i, name in enumerate(labels)}
    for c, s, e, strand in genes:
        if c == chrom:
            truth[s:e] = index[f"CDS{strand}"]
    return confusion_matrix(truth[pos[ok]], probs[ok].argmax(axis=1), labels=list(range(len(labels))))


def mean_cosine(matrix: np.ndarray) -> float:
    """Mean cosine similarity between distinct rows (how alike the embeddings are)."""
    unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    n = sims.shape[0]
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1))) if n > 1 else math.nan


def log_pictures(tracking_uri: str, runs: list[tuple[str, str | None]], pictures: dict[str, Path]) -> None:
    """Every picture as an artifact (plots/) of each (experiment, run id)."""
    from hyena_platform import tracking

    for experiment, run_id in runs:
        if run_id:
            cfg = tracking.TrackingConfig(uri=tracking_uri, experiment=experiment).resolved()
            for path in pictures.values():
                tracking.log_artifact(cfg, run_id, path, "plots")


def first_present(mapping: dict[str, Any], *keys: str) -> Any:
    return next((mapping[k] for k in keys if k in mapping), None)
