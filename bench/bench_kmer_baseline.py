"""The fine-tuning k-mer baseline's fit (hyena_platform.finetune.kmer): the current fit against
the previous one, on the same features of the same positions.

    .venv/bin/python bench/bench_kmer_baseline.py                  # ~2-5 minutes on 2 cores
    .venv/bin/python bench/bench_kmer_baseline.py --tasks quick --json out.json

Tasks: per-base gene annotation of the bundled V. cholerae genome (Prodigal's calls, classes
noncoding / CDS+ / CDS-, train chrI, valid 10% of chrI's windows, test chrII):

- genes: jobs/finetune_genes.yaml (256-base windows, k = 1..6 over 96 bases, 20,000 train
  positions, 50,000 per evaluated split);
- genes-1024: the same with `hyena demo`'s 1,024-base windows (windows only bound the context at
  their starts);
- quick: `hyena demo --quick` (256-base windows, k = 1..3 over 32 bases, 2,000 positions).

Both sides fit on one feature matrix (built once, timed apart) and choose the regularisation on
valid by MCC:

1. previous: C in (0.01, 0.1, 1.0), each a fresh L-BFGS fit (max_iter 500) on float64 features,
   with the BLAS/OpenMP threads the libraries start by default;
2. current: `kmer.choose_model` under one thread (float32 features, C walked upward from 1e-5
   with warm starts, stopping after two falls), as `run_baseline` runs it.

Prints wall and CPU seconds of each fit, the chosen C, valid/test MCC, and the ratio of wall
times; no assertion.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def tasks(bed: Path) -> dict[str, tuple[dict, dict]]:
    """name -> (data section, baseline section), as the jobs name them."""
    from hyena_platform.demo.jobs import FINETUNE, QUICK_BASELINE, QUICK_FINETUNE_DATA
    from hyena_platform.genome_assets import BUNDLED_GENOME

    data = {"format": "fasta_bed", "fasta": str(BUNDLED_GENOME), "bed": str(bed), "train_chroms": ["chrI"],
            "test_chroms": ["chrII"], "strand_labels": True, "background_label": "noncoding"}
    return {"genes": ({**data, "window": 256}, dict(FINETUNE["baseline"])),
            "genes-1024": ({**data, "window": FINETUNE["data"]["window"]}, dict(FINETUNE["baseline"])),
            "quick": ({**data, **QUICK_FINETUNE_DATA}, dict(QUICK_BASELINE))}


def feature_sets(data_section: dict, baseline_section: dict):
    from hyena_platform.config import from_mapping
    from hyena_platform.finetune import kmer
    from hyena_platform.finetune.data import load_task_data
    from hyena_platform.finetune.data_config import FinetuneDataConfig

    cfg = from_mapping(FinetuneDataConfig, data_section, source="bench")
    b = from_mapping(kmer.BaselineConfig, baseline_section, source="bench")
    splits = load_task_data(cfg, task="token", problem_type="single_label_classification").splits
    out = {}
    for i, (name, limit) in enumerate((("train", b.max_train_positions), ("valid", b.max_eval_positions),
                                       ("test", b.max_eval_positions))):
        picks = kmer.sample_positions(splits[name], limit, b.seed + i)
        out[name] = (kmer.token_features(splits[name].tokens, picks, b.max_k, b.context),
                     kmer.position_labels(splits[name], picks))
    return out


def previous_fit(sets: dict):
    """The fit before this benchmark's change: three fresh fits, float64, default threads."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from hyena_platform.finetune.metrics import compute_metrics

    X = {s: sets[s][0].astype(np.float64) for s in sets}
    best, best_c, best_value = None, None, -np.inf
    for c in (0.01, 0.1, 1.0):
        model = make_pipeline(StandardScaler(with_mean=False), LogisticRegression(C=c, max_iter=500))
        model.fit(X["train"], sets["train"][1])
        value = compute_metrics("single_label_classification", sets["valid"][1], model.predict_proba(X["valid"]))["mcc"]
        if best is None or value > best_value:
            best, best_c, best_value = model, c, value
    return best, best_c, X


def current_fit(sets: dict):
    from threadpoolctl import threadpool_limits

    from hyena_platform.finetune.kmer import choose_model

    with threadpool_limits(limits=1):
        best, c, _ = choose_model("single_label_classification", "mcc", sets["train"], sets["valid"])
    return best, c, {s: sets[s][0] for s in sets}


def measure(name: str, fit, sets: dict) -> dict:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from hyena_platform.finetune.metrics import compute_metrics

    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model, c, X = fit(sets)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    mcc = {s: compute_metrics("single_label_classification", sets[s][1], model.predict_proba(X[s]))["mcc"]
           for s in ("valid", "test")}
    row = {"fit": name, "wall_s": wall, "cpu_s": cpu, "C": c, "valid_mcc": mcc["valid"], "test_mcc": mcc["test"]}
    print(f"  {name:9s} fit {wall:7.1f} s wall {cpu:7.1f} s CPU  C {c:<7g} valid MCC {mcc['valid']:.4f}  "
          f"test MCC {mcc['test']:.4f}", flush=True)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="genes,genes-1024,quick", help="comma-separated: genes, genes-1024, quick")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args(argv)
    from hyena_platform.finetune.genes import call_genes, write_bed
    from hyena_platform.genome_assets import BUNDLED_GENOME

    out = {"load_avg_start": os.getloadavg(), "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        bed = Path(tmp) / "vc_genes.bed"
        write_bed(call_genes(str(BUNDLED_GENOME)), bed)
        specs = tasks(bed)
        for task in args.tasks.split(","):
            t0 = time.perf_counter()
            sets = feature_sets(*specs[task])
            n = {s: sets[s][0].shape[0] for s in sets}
            print(f"{task}: {n['train']:,} train / {n['valid']:,} valid / {n['test']:,} test positions x "
                  f"{sets['train'][0].shape[1]:,} features, built in {time.perf_counter() - t0:.1f} s", flush=True)
            rows = [measure("previous", previous_fit, sets), measure("current", current_fit, copy.copy(sets))]
            ratio = rows[0]["wall_s"] / rows[1]["wall_s"]
            print(f"  current fit: {ratio:.1f}x faster (wall), {rows[0]['cpu_s'] / rows[1]['cpu_s']:.1f}x less CPU; "
                  f"test MCC {rows[1]['test_mcc'] - rows[0]['test_mcc']:+.4f}", flush=True)
            out["tasks"][task] = {"positions": n, "fits": rows, "wall_ratio": ratio}
    out["load_avg_end"] = os.getloadavg()
    print(f"load average: start {out['load_avg_start'][0]:.2f}, end {out['load_avg_end'][0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
