"""Zero-shot variant effects on Ray: log P(alt haplotype) - log P(ref haplotype) for a VCF.

    from hyena_platform.vep import load_job, run_vep
    result = run_vep(load_job("jobs/vep_local.yaml"))   # `hyena vep jobs/vep_local.yaml`

Modules (pure ones first; only `pipeline` imports Ray, and only when called):

- `config`: `VepJob` and its sections (the `vep.yaml` schema), `load_job`.
- `alleles`: skip reasons, the REF check, normalisation (left-aligned, trimmed edits).
- `haplotypes`: the window rule (flank, contig edges, start token), model inputs, the score.
- `vcf`, `reference`: reading the VCF (pysam) and the FASTA (cached blocks).
- `scorer`: `VariantScorer`, one model replica scoring chunks of records in batches.
- `plan`: every input check before work starts (VCF, contigs, assembly, window vs l_max).
- `output`: per-chunk Parquet files, the annotated VCF (bgzip + tabix).
- `pipeline`: `run_vep` on the shared batch machinery (hyena_platform.batch), manifest, MLflow.
"""

from hyena_platform.vep.config import VepJob, job_from_mapping, load_job


def run_vep(job: VepJob, **kwargs):
    """See `hyena_platform.vep.pipeline.run_vep` (imported on call: Ray loads only then)."""
    from hyena_platform.vep.pipeline import run_vep as _run_vep

    return _run_vep(job, **kwargs)


__all__ = ["VepJob", "job_from_mapping", "load_job", "run_vep"]
