"""The per-batch scorer: model logits -> log P(reference base | upstream), entropy, probabilities.

Every score is over the model's full output distribution (softmax over all logits, the same
distribution as the training loss), natural log, so ``exp(-mean(log_prob))`` is the perplexity
pretraining reports. Bases that are N get null scores (NaN here, null in Parquet).

`ChunkScorer` scores one chunk (see `windows`): its blocks on each strand in consecutive model
batches of `batch_size` windows, in order. Batches never mix chunks, so a chunk's scores do not
depend on what else was in flight: a resumed run writes the same bytes as an uninterrupted one.
The Ray actor that wraps it is `hyena_platform.score.pipeline.ScoreReplica`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hyena.precision import autocast_context
from hyena.tokenizer import A, C, G, N, PAD, T
from hyena_platform.score.tiling import (
    CENTRED, Chunk, ChunkWindows, chunk_windows, input_end, strand_sequence, window_batch, window_layout,
)

BASE_IDS = (A, C, G, T)
LN2 = float(np.log(2.0))
RC_BASE_IDS = (T, G, C, A)  # reverse-strand probability of the complement, in forward terms


def score_batch(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *,
                probabilities: bool = False, precision: str = "fp32") -> dict[str, torch.Tensor]:
    """inputs, labels: int64 (B, L). Returns float32 (B, L) ``log_prob`` and ``entropy``, and
    ``probs`` (B, L, 4) in A, C, G, T order when `probabilities`. Call under inference_mode.
    `precision` bf16 runs the model's matrix products in bfloat16 (`hyena.precision`); the
    softmax and every score are float32 either way.

    A fine-tuned per-base model (hyena.heads.HyenaDNAForTokenPrediction) adds one (B, L)
    ``p_<class>`` column per class. The class of base t is read after the model has seen base t,
    so the classifier runs over the bases themselves (`labels`: right-padded, real bases first),
    while log_prob and entropy come, as for any model, from the stream that stops before t
    (through the tied embedding: the language-model view of the fine-tuned backbone). A
    both-strands head also reads the bases after t in the window; `ChunkScorer` gives it centred
    windows (hyena_platform.score.tiling) so that every base has context on both sides."""
    head = getattr(model, "head_config", None)
    with autocast_context(inputs.device, precision):
        if head is None:
            logits = model(inputs).logits  # (B, L, V)
        else:
            hidden = model.backbone(inputs)  # (B, L, D)
            logits = torch.nn.functional.linear(hidden, model.backbone.embeddings.word_embeddings.weight)
            # (B, L, C): position t has seen base t (and, for a both-strands head, the bases after it
            # inside the window too)
            classes = model.head(model.token_features(labels, labels.ne(PAD))[0])
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, L, V)
    out = {
        "log_prob": logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1),
        "entropy": -(logp.exp() * logp).sum(-1),
    }
    if probabilities:
        out["probs"] = logp[..., list(BASE_IDS)].exp()
    if head is not None:
        p = torch.softmax(classes.float(), dim=-1)
        names = head.label_names or tuple(str(i) for i in range(head.num_labels))
        for j, name in enumerate(names):
            out[f"p_{name}"] = p[..., j]
    return out


@dataclass
class ChunkScores:
    """Scores of one chunk, forward positions start..end-1 in order."""

    ref: np.ndarray  # uint8 token ids (A=7 C=8 G=9 T=10 N=11)
    columns: dict[str, np.ndarray]  # float32 (n,) or (n, 4) for probs*, NaN where ref is N
    model_s: float = 0.0  # wall seconds in the model and its post-processing
    model_cpu_s: float = 0.0  # CPU seconds of this process meanwhile (all its threads)


def kmer_payload(chain: Any) -> dict[str, Any]:
    """The replicas' part of a KmerChain (hyena_platform.score.kmer): its order and log2 tables."""
    return {"order": chain.order, "tables": chain.tables}


def model_payload(model: torch.nn.Module) -> dict[str, Any]:
    """A model as plain data for ray.put: its config and numpy weights (zero-copy in the store)."""
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        state[k] = v if v.dtype == torch.bfloat16 else v.numpy()  # numpy has no bfloat16
    head = getattr(model, "head_config", None)
    return {"config": model.config.to_dict(), "state": state, **({"head": head.to_dict()} if head else {})}


def model_from_payload(payload: dict[str, Any], device: str = "cpu") -> torch.nn.Module:
    from hyena import HyenaConfig, HyenaDNAForCausalLM
    from hyena.heads import HeadConfig, HyenaDNAForTokenPrediction

    cfg = HyenaConfig.from_dict(dict(payload["config"]))
    model = (HyenaDNAForTokenPrediction(cfg, HeadConfig.from_dict(dict(payload["head"]))) if "head" in payload
             else HyenaDNAForCausalLM(cfg))
    model.load_state_dict({k: v if isinstance(v, torch.Tensor) else torch.from_numpy(np.array(v))
                           for k, v in payload["state"].items()})
    return model.to(device).eval()


def fetch_payload(payload: Any) -> Any:
    """In a Ray actor, ``[ObjectRef]`` of a payload -> the payload (the list keeps Ray from
    inlining the weights into the actor's constructor arguments; they come from the object
    store once per replica); anything else as it is."""
    if isinstance(payload, list):
        import ray

        return ray.get(payload[0])
    return payload


def load_payload(payload: Any, device: str = "cpu") -> torch.nn.Module:
    """The model of a replica: `payload` is a model, `model_payload(model)`, or ``[ObjectRef]``
    of either (`fetch_payload`)."""
    payload = fetch_payload(payload)
    if isinstance(payload, torch.nn.Module):
        return payload.to(device).eval()
    return model_from_payload(payload, device)


class ChunkScorer:
    """Scores chunks with one model replica. `payload` is a model or `model_payload(model)`,
    the latter with an optional ``kmer`` entry (`kmer_payload`: the chain of bits_saved).
    `layout` (hyena_platform.score.tiling): None takes the model's own (`window_layout`: centred
    windows for a per-base head that reads both strands, causal ones for every other model)."""

    def __init__(self, payload: Any, *, window: int, stride: int, batch_size: int,
                 reverse_strand: bool = False, probabilities: bool = False, device: str = "cpu",
                 threads: int | None = None, precision: str = "fp32", layout: str | None = None):
        if threads is not None:
            torch.set_num_threads(threads)
        payload = fetch_payload(payload)
        self.kmer = payload.get("kmer") if isinstance(payload, dict) else None
        self.model = load_payload(payload, device)
        self.window, self.stride, self.batch_size = window, stride, batch_size
        self.reverse_strand, self.probabilities = reverse_strand, probabilities
        self.device = torch.device(device)
        self.precision = precision
        self.layout = layout or window_layout(self.model)
        if self.layout == CENTRED and reverse_strand:
            raise ValueError("centred windows (a both-strands per-base model) score the forward strand only")

    @property
    def context_before(self) -> int:
        """Bases before a chunk's first window that `score_chunk` also needs (the k-mer context)."""
        return self.kmer["order"] if self.kmer else 0

    def windows(self, chunk: Chunk) -> ChunkWindows:
        """The chunk's blocks and the span of bases they read, in this scorer's layout."""
        return chunk_windows(chunk, self.window, self.stride, reverse_strand=self.reverse_strand, layout=self.layout)

    # ---------------------------------------------------------------------------------- scoring

    def score_chunk(self, chunk: Chunk, tokens: np.ndarray, fetch_start: int) -> ChunkScores:
        """tokens: forward ids of ``[fetch_start, fetch_start + len(tokens))``, covering
        `windows(chunk)`'s fetch span and, for bits_saved, the `context_before` bases before the
        chunk (or from the chromosome's start)."""
        plan = self.windows(chunk)
        lo = plan.fetch_start - fetch_start
        span = tokens[lo: lo + plan.fetch_end - plan.fetch_start]
        t0, c0 = time.perf_counter(), time.process_time()
        columns = self._strand(span, plan.fetch_start, plan.fetch_end, chunk.length, plan.forward, False)
        ref = span[chunk.start - plan.fetch_start: chunk.end - plan.fetch_start]
        if self.reverse_strand:
            rc = self._strand(span, plan.fetch_start, plan.fetch_end, chunk.length, plan.reverse, True)
            for key, value in rc.items():  # reverse-strand order -> forward positions
                columns[f"{key}_rc"] = np.ascontiguousarray(value[::-1])
            columns["log_prob_mean"] = (columns["log_prob"] + columns["log_prob_rc"]) / np.float32(2)
            columns["entropy_mean"] = (columns["entropy"] + columns["entropy_rc"]) / np.float32(2)
        if self.kmer is not None:
            columns["bits_saved"] = self._bits_saved(chunk, tokens, fetch_start, columns["log_prob"])
        n_mask = ref == N
        if n_mask.any():
            for value in columns.values():
                value[n_mask] = np.nan
        return ChunkScores(np.ascontiguousarray(ref), columns, time.perf_counter() - t0,
                           time.process_time() - c0)

    def _bits_saved(self, chunk: Chunk, tokens: np.ndarray, fetch_start: int, log_prob: np.ndarray) -> np.ndarray:
        """log2 P_model - log2 P_kmer for the chunk's bases (hyena_platform.score.kmer)."""
        from hyena_platform.train.baselines import per_base_log2

        order = self.kmer["order"]
        first = max(0, chunk.start - order)
        assert fetch_start <= first or fetch_start == 0, (fetch_start, chunk.start, order)
        stretch = tokens[first - fetch_start: chunk.end - fetch_start]
        kmer = per_base_log2(self.kmer["tables"], stretch, order)[chunk.start - first:]
        return (log_prob.astype(np.float64) / LN2 - kmer).astype(np.float32)

    def _strand(self, span: np.ndarray, fetch_start: int, fetch_end: int, length: int,
                blocks: np.ndarray, reverse: bool) -> dict[str, np.ndarray]:
        seq, seq_start = strand_sequence(span, fetch_start, fetch_end, length, reverse)
        width = int((input_end(blocks) - blocks[:, 2]).max())
        parts: dict[str, list[np.ndarray]] = {}
        with torch.inference_mode():
            for b0 in range(0, blocks.shape[0], self.batch_size):
                rows = blocks[b0: b0 + self.batch_size]
                inputs, labels, owned = window_batch(seq, seq_start, rows, width)
                out = score_batch(self.model, torch.from_numpy(inputs).to(self.device),
                                  torch.from_numpy(labels).to(self.device),
                                  probabilities=self.probabilities, precision=self.precision)
                mask = torch.from_numpy(owned).to(self.device)
                for key, value in out.items():
                    parts.setdefault(key, []).append(value[mask].cpu().numpy())
        columns = {k: np.concatenate(v) for k, v in parts.items()}
        if reverse and "probs" in columns:
            # P(complement of b) on the reverse strand, reported under forward base b.
            columns["probs"] = columns["probs"][:, [BASE_IDS.index(i) for i in RC_BASE_IDS]]
        return columns
