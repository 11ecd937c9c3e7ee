"""hyena_platform.progress: the one module every command prints its progress through."""

from __future__ import annotations

from hyena_platform.progress import (
    EmbeddingProgress, FinetuneProgress, ScoringProgress, TrainingProgress, VariantProgress, format_duration,
)


def collect(printer_cls, events, **kw):
    lines: list[str] = []
    printer = printer_cls(lines.append, **kw)
    for event in events:
        printer(event)
    return lines


def test_durations_are_h_mm_ss():
    assert [format_duration(s) for s in (5, 65, 3725, None, float("inf"))] == [
        "0:00:05", "0:01:05", "1:02:05", "-", "-"]


def test_batch_jobs_print_the_plan_then_throttled_chunks_and_always_the_last():
    chunk = {"event": "chunk", "total": 3, "rows": 10, "variants_per_s": 20.0, "eta_s": 65}
    lines = collect(VariantProgress, [
        {"event": "start", "rows": 84, "records": 82, "model": "m", "flank": 500, "chunks": 3, "pending": 2,
         "output": "out"},
        {**chunk, "done": 1}, {**chunk, "done": 2}, {**chunk, "done": 3},  # the 2nd is within every_s
        {"event": "finalize", "vcf": True}], every_s=3600)
    assert lines == [
        "scoring 84 ALT alleles of 82 VCF records with m (flank 500 bases each side) in 3 chunk(s) -> out",
        "resuming: 1 chunk(s) already written, 2 to go",
        "[1/3 chunks] 10 variants  20 variants/s  ETA 0:01:05",
        "[3/3 chunks] 10 variants  20 variants/s  ETA 0:01:05",
        "writing the annotated VCF (bgzip + tabix)"]
    done = collect(EmbeddingProgress, [{"event": "start", "sequences": 4, "input": "fasta", "model": "m",
                                        "chunks": 2, "pending": 0, "output": "o"}, {"event": "finalize"}])
    assert done == ["embedding 4 sequence(s) (fasta) with m in 2 chunk(s) -> o", "every chunk is already written"]
    scored = collect(ScoringProgress, [{"event": "chunk", "done": 1, "total": 1, "chrom": "chrII", "start": 0,
                                        "end": 1000, "bases_per_s": 1500.0}], indent="  ")
    assert scored == ["  [1/1 chunks] chrII:0-1,000  1,500 bases/s  ETA -"]


def test_training_and_finetuning_reports():
    val = {"step": 4, "mcc": 0.5, "loss": 0.7}
    lines = collect(FinetuneProgress, [
        {"step": 4, "total_steps": 8, "epoch": 0.5, "loss": 0.69, "examples_per_s": 12.0, "elapsed_s": 3,
         "val": [val], "metric": "mcc", "best_value": 0.5},
        {"test": {"mcc": 0.4}}, {"event": "stopped", "message": "interrupted"}, {"event": "baseline",
                                                                              "features": "k-mers of the 96 bases on each side of each base (two blocks), k = 1..6"},
        {"event": "baseline_done", "metric": "mcc", "valid_value": 0.5, "test_value": 0.25, "examples": 20000, "seconds": 9.6}])
    assert lines == ["step 4/8  epoch 0.50  loss 0.6900  12.0 seq/s  elapsed 0:00:03",
                     "  valid at step 4: mcc 0.5000  loss 0.7000  (best mcc 0.5000)",
                     "  test (best checkpoint): mcc 0.4000", "stopped: interrupted",
                     "fitting the k-mer baseline (k-mers of the 96 bases on each side of each base (two blocks), "
                     "k = 1..6, linear model) ...",
                     "  k-mer baseline: valid mcc 0.5000, test mcc 0.2500 (20,000 train examples, fitted in 0:00:09)"]
    probe = collect(FinetuneProgress, [{"step": 0, "val": [{"step": 0, "mcc": 0.9}], "metric": "mcc", "best_value": 0.9,
                                        "probe": {"type": "probe", "C": 0.3, "rows": 8640}}])
    assert probe == ["  linear probe (frozen backbone, 8,640 train rows, C=0.3), valid: mcc 0.9000  (best mcc 0.9000)"]
    lines = collect(TrainingProgress, [{"stage": 0, "n_stages": 2, "seq_len": 64, "step": 1, "total_steps": 4,
                                        "loss": 1.38, "tokens_per_s": 1000.0, "eta_s": 10}])
    assert lines == ["[stage 1/2 L=64] step 1/4  loss 1.3800  1,000 tok/s  ETA 0:00:10"]
