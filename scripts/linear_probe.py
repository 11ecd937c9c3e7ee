"""Linear probe of a base model on a sequence task: what its frozen states already say about the
labels, before any fine-tuning.

    python scripts/linear_probe.py BASE_DIR data/species.parquet [--layers final l1+final all]

Every sequence of the table (columns `sequence`, `label`, `split` = train/test) and its reverse
complement go through the frozen backbone once (bf16 autocast); each layer's states are
mean-pooled over the sequence per strand (HeadConfig(pooling="mean", strands="both")'s features,
per layer). The fine-tuning job's probe (`train.head_init: probe`, finetune.probe.fit_probe: a
standardised multinomial logistic regression) is fitted on train, its C chosen on a seeded 10% of
train, and scored on test (MCC), per set of layers. It is the
"linear probing" half of Kumar et al. 2022 (LP-FT): a cheap reading of how much a pretraining
run taught the backbone about a task, comparable across base models on the same table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow.parquet as pq
import torch
from sklearn.metrics import matthews_corrcoef
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight

import hyena
from hyena.heads import pool, reverse_complement_batch
from hyena.tokenizer import Tokenizer
from hyena_platform.finetune.probe import C_GRID, fit_probe


def pooled_states(model_dir: str, sequences: list[str], batch: int = 64) -> np.ndarray:
    """(N, n_states, 2, D): each state's (embeddings, every layer, the final norm) mean over the
    sequence, forward read then reverse-complement read."""
    model = hyena.from_pretrained(model_dir).eval()
    tok = Tokenizer(padding_side="right")
    out = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for i in range(0, len(sequences), batch):
            ids, mask = (torch.from_numpy(a) for a in tok.batch_encode(sequences[i:i + batch]))
            mask = mask.bool()
            rc, _ = reverse_complement_batch(ids, mask)
            _, states = model.backbone(torch.cat([ids, rc]), output_hidden_states=True)
            per_state = [torch.stack([pool(r.float(), mask, "mean") for r in h.chunk(2)], 1) for h in states]
            out.append(torch.stack(per_state, 1).numpy())
    return np.concatenate(out)


def probe(features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """(chosen C, test MCC): the fine-tuning job's probe (finetune.probe.fit_probe: standardised
    logistic regression, balanced class weights) with C chosen on a seeded 10% of train, then
    refitted on all of train at that C."""
    classes, y = np.unique(labels, return_inverse=True)
    weights = compute_class_weight("balanced", classes=np.arange(len(classes)), y=y[train])
    fit_idx, val_idx = train_test_split(np.flatnonzero(train), test_size=0.1, random_state=0, stratify=y[train])

    def fitted(rows, grid=C_GRID):
        return fit_probe((features[rows], y[rows]), (features[val_idx], y[val_idx]), grid=grid, metric="mcc",
                         problem_type="single_label_classification", num_labels=len(classes), class_weights=weights)

    best = fitted(fit_idx).C
    final = fitted(np.flatnonzero(train), grid=[best])
    logits = (features[test] - final.mean) / final.scale @ final.coef.T + final.intercept
    return best, matthews_corrcoef(y[test], logits.argmax(axis=1))


LAYER_SETS = {"final": [-1], "l1+final": [1, -1], "all": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="base model directory (config.json + model.safetensors)")
    parser.add_argument("table", help="Parquet with sequence, label, split (train/test)")
    parser.add_argument("--layers", nargs="+", default=list(LAYER_SETS), choices=list(LAYER_SETS))
    args = parser.parse_args()
    table = pq.read_table(args.table, columns=["sequence", "label", "split"]).to_pandas()
    start = time.perf_counter()
    states = pooled_states(args.model, list(table.sequence))
    print(f"{len(table):,} sequences x 2 strands through the frozen backbone in {time.perf_counter() - start:.0f} s")
    labels, train, test = table.label.to_numpy(), (table.split == "train").to_numpy(), (table.split == "test").to_numpy()
    for name in args.layers:
        picked = states if LAYER_SETS[name] is None else states[:, LAYER_SETS[name]]
        c, mcc = probe(picked.reshape(len(table), -1), labels, train, test)
        print(f"{name:>9}: test MCC {mcc:.4f}  (C = {c:g}, {picked.shape[1] * picked.shape[2] * picked.shape[3]} features)")


if __name__ == "__main__":
    main()
