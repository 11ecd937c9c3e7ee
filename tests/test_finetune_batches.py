"""Fine-tuning batches (no Ray): each worker's share of a step, right padding, and the
reverse-complement augmentation of sequence tasks."""

from __future__ import annotations

import numpy as np
import pytest

from hyena.tokenizer import Tokenizer, reverse_complement_ids
from hyena_platform.errors import ConfigError
from hyena_platform.finetune.batches import ExampleBatches, collate, strand_flips, worker_indices
from hyena_platform.finetune.examples import Split


def split_of(n: int) -> Split:
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(5, 12)))) for _ in range(n)]
    tokens = [Tokenizer().encode(s).astype(np.uint8) for s in seqs]
    return Split(tokens, np.arange(n) % 3, [f"row {i}" for i in range(n)])


def test_workers_split_each_global_batch_and_any_world_size_sees_the_same_examples():
    one = worker_indices(40, 7, per_epoch=5, global_batch=8, rank=0, world=1, seed=3)
    two = np.concatenate([worker_indices(40, 7, per_epoch=5, global_batch=8, rank=r, world=2, seed=3) for r in (0, 1)])
    assert np.array_equal(one, two) and len(set(one)) == 8
    flips = strand_flips(7, global_batch=8, rank=0, world=1, seed=3)
    assert np.array_equal(flips, np.concatenate([strand_flips(7, global_batch=8, rank=r, world=2, seed=3)
                                                 for r in (0, 1)]))


def test_reverse_complement_flips_about_half_the_examples_and_keeps_their_labels():
    split = split_of(64)
    plain = ExampleBatches(split, task="sequence", problem_type="single_label_classification", per_epoch=4,
                           global_batch=16, rank=0, world=1, seed=0)
    rc = ExampleBatches(split, task="sequence", problem_type="single_label_classification", per_epoch=4,
                        global_batch=16, rank=0, world=1, seed=0, reverse_complement=True)
    flipped = 0
    for step, (a, b) in enumerate(zip(plain.batches_for(None, 0), rc.batches_for(None, 0))):
        if step == 8:
            break
        assert np.array_equal(a["labels"], b["labels"]) and np.array_equal(a["attention_mask"], b["attention_mask"])
        flips = strand_flips(step, global_batch=16, rank=0, world=1, seed=0)
        for row, f in enumerate(flips):
            n = int(a["attention_mask"][row].sum())
            x, y = a["input_ids"][row, :n].numpy(), b["input_ids"][row, :n].numpy()
            assert np.array_equal(y, reverse_complement_ids(x) if f else x)
        flipped += int(flips.sum())
    assert 40 <= flipped <= 88  # 128 coins


def test_collate_pads_on_the_right():
    split = split_of(4)
    b = collate(split, [0, 1, 2], task="sequence", problem_type="single_label_classification")
    lengths = [len(split.tokens[i]) for i in range(3)]
    assert b["attention_mask"].sum(1).tolist() == lengths and b["input_ids"].shape[1] == max(lengths)


def test_reverse_complement_is_refused_for_token_tasks(tmp_path):
    from hyena_platform.config import from_mapping
    from hyena_platform.finetune.config import FinetuneJob

    with pytest.raises(ConfigError, match="reverse_complement applies to sequence tasks"):
        from_mapping(FinetuneJob, {"model": {"init_from": "x"}, "task": {"type": "token"},
                                   "data": {"format": "fasta_bed", "fasta": "a.fa", "bed": "a.bed",
                                            "train_chroms": ["chrI"], "test_chroms": ["chrII"]},
                                   "train": {"reverse_complement": True}}, source="job.yaml")


def test_task_strands_is_typed_and_reaches_the_head_and_the_baseline_description():
    from hyena_platform.config import from_mapping
    from hyena_platform.finetune.config import FinetuneJob

    token = {"model": {"init_from": "x"}, "task": {"type": "token"},
             "data": {"format": "fasta_bed", "fasta": "a.fa", "bed": "a.bed", "train_chroms": ["chrI"],
                      "test_chroms": ["chrII"]}}
    job = from_mapping(FinetuneJob, token, source="job.yaml")
    assert job.task.strands == "forward" and job.baseline_features == "k-mers of the 96 bases ending at each base, k = 1..6"
    token["task"]["strands"] = "both"
    job = from_mapping(FinetuneJob, token, source="job.yaml")
    assert job.baseline_features == "k-mers of the 96 bases on each side of each base (two blocks), k = 1..6"
    seq = from_mapping(FinetuneJob, {"model": {"init_from": "x"}, "task": {"strands": "both"},
                                     "data": {"path": "t.csv"}}, source="job.yaml")
    assert seq.task.strands == "both" and seq.baseline_features.startswith("k-mer frequencies of the whole sequence")
    token["task"]["strands"] = "reverse"
    with pytest.raises(ConfigError, match=r"job.yaml: task.strands must be one of 'forward', 'both', got 'reverse'"):
        from_mapping(FinetuneJob, token, source="job.yaml")


def test_track_best_keeps_the_best_validations_metrics_and_weights():
    """finish() reports the best weights' valid metrics from the validation that found them
    (no second pass over valid), so they must be that validation's, not the latest one's."""
    import torch

    from hyena_platform.finetune.loop import Progress, track_best

    model, progress = torch.nn.Linear(2, 1), Progress()
    first = {"mcc": 0.5, "accuracy": 0.7}
    best = track_best(model, first, "mcc", 10, progress, None, patience=2)
    weights_at_10 = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    best = track_best(model, {"mcc": 0.4, "accuracy": 0.9}, "mcc", 20, progress, best, patience=2)
    assert progress.best_metrics == first and progress.best_step == 10 and progress.evals_since_best == 1
    assert all(torch.equal(best[k], weights_at_10[k]) for k in best)
    track_best(model, {"mcc": 0.6, "accuracy": 0.8}, "mcc", 30, progress, best, patience=2)
    assert progress.best_metrics == {"mcc": 0.6, "accuracy": 0.8} and progress.best_step == 30
    assert Progress(**{k: v for k, v in vars(Progress()).items() if k != "best_metrics"}).best_metrics == {}
