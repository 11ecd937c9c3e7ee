"""Progress on the terminal, for every command: one module, one look.

Jobs emit progress *events* (plain dicts: a training report, a scored chunk, ...) to a callback;
the printers here turn them into lines. Lines, not redrawn bars, because the same output goes to
a terminal, to `ray job logs` and to CI logs, where a bar's carriage returns become noise. Times
are formatted with tqdm's `format_interval` (H:MM:SS), rates are rate-limited per printer.

- `TrainingProgress`: one line per training report (stage, step, loss, tokens/s, ETA) and one
  per held-out validation; used by `hyena pretrain` and `hyena demo`.
- `FinetuneProgress`: one line per fine-tuning report (step, epoch, loss, seq/s), one per
  validation and the test line; used by `hyena finetune`.
- `ScoringProgress`, `VariantProgress`, `EmbeddingProgress`: the batch job's plan, then a chunk
  line at most every `every_s` seconds (and the last); `hyena score`, `hyena vep`, `hyena embed`.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

Echo = Callable[[str], None]


def format_duration(seconds: float | None) -> str:
    """H:MM:SS for progress lines; '-' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    from tqdm import tqdm

    text = tqdm.format_interval(int(seconds))
    return text if text.count(":") == 2 else f"0:{text}"


class _Printer:
    """`echo` receives each line (default: print to stdout, flushed: the line is the progress)."""

    def __init__(self, echo: Echo | None = None, *, indent: str = ""):
        self.echo, self.indent = echo or _print_flushed, indent

    def line(self, text: str) -> None:
        self.echo(self.indent + text)


def _print_flushed(text: str) -> None:
    print(text, flush=True)


class TrainingProgress(_Printer):
    """Lines from pretraining (or fine-tuning) report events (hyena_platform.train.callback)."""

    def __call__(self, event: dict[str, Any]) -> None:
        for step in event.get("resumed_from") or ():
            self.line(f"resumed from the checkpoint at step {step}")
        if event.get("event") == "stopped":
            self.line(f"stopped: {event.get('message')}")
        if event.get("loss") is not None:
            tps = event.get("tokens_per_s") or 0.0
            self.line(f"[stage {event['stage'] + 1}/{event['n_stages']} L={event['seq_len']}] "
                      f"step {event['step']}/{event['total_steps']}  loss {event['loss']:.4f}  "
                      f"{tps:,.0f} tok/s  ETA {format_duration(event.get('eta_s'))}")
        for v in event.get("val") or ():
            self.line(f"  held-out L={v['seq_len']} at step {v['step']}: loss {v['loss']:.4f}  "
                      f"perplexity {v['perplexity']:.4f}  {v['bits_per_base']:.4f} bits/base")


class FinetuneProgress(_Printer):
    """Lines from fine-tuning report events (hyena_platform.finetune.callback)."""

    def __call__(self, event: dict[str, Any]) -> None:
        for step in event.get("resumed_from") or ():
            self.line(f"resumed from the checkpoint at step {step}")
        if event.get("event") == "stopped":
            self.line(f"stopped: {event.get('message')}")
        if event.get("loss") is not None:
            self.line(f"step {event['step']}/{event['total_steps']}  epoch {event['epoch']:.2f}  "
                      f"loss {event['loss']:.4f}  {event.get('examples_per_s') or 0:,.1f} seq/s  "
                      f"elapsed {format_duration(event.get('elapsed_s'))}")
        for v in event.get("val") or ():
            shown = "  ".join(f"{k} {x:.4f}" for k, x in v.items() if k != "step")
            self.line(f"  valid at step {v['step']}: {shown}  "
                      f"(best {event['metric']} {event.get('best_value') or 0:.4f})")
        if event.get("test"):
            self.line("  test (best checkpoint): " + "  ".join(f"{k} {x:.4f}" for k, x in event["test"].items()))


class _BatchJobProgress(_Printer):
    """A batch job's events: ``start`` (the plan), ``chunk`` (throttled), ``finalize``."""

    def __init__(self, echo: Echo | None = None, *, indent: str = "", every_s: float = 5.0):
        super().__init__(echo, indent=indent)
        self.every_s, self.last = every_s, float("-inf")

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            self.line(self.plan_line(event))
            skipped = event["chunks"] - event["pending"]
            if skipped and event["pending"]:
                self.line(f"resuming: {skipped} chunk(s) already written, {event['pending']} to go")
            elif skipped:
                self.line("every chunk is already written")
        elif kind == "chunk":
            now = time.monotonic()
            if now - self.last < self.every_s and event["done"] < event["total"]:
                return
            self.last = now
            self.line(f"[{event['done']}/{event['total']} chunks] {self.chunk_text(event)}")
        elif kind == "finalize" and self.finalize_line(event):
            self.line(self.finalize_line(event))

    def plan_line(self, event: dict[str, Any]) -> str:
        raise NotImplementedError

    def chunk_text(self, event: dict[str, Any]) -> str:
        raise NotImplementedError

    def finalize_line(self, event: dict[str, Any]) -> str | None:
        return None


class ScoringProgress(_BatchJobProgress):
    """Lines from scoring events (hyena_platform.score.pipeline): start, chunk, finalize."""

    def plan_line(self, event: dict[str, Any]) -> str:
        return (f"scoring {event['bases']:,} bases with {event['model']} (window {event['window']:,}, "
                f"stride {event['stride']:,}) in {event['chunks']} chunk(s) -> {event['output']}")

    def chunk_text(self, event: dict[str, Any]) -> str:
        return (f"{event['chrom']}:{event['start']:,}-{event['end']:,}  {event['bases_per_s']:,.0f} bases/s  "
                f"ETA {format_duration(event.get('eta_s'))}")

    def finalize_line(self, event: dict[str, Any]) -> str | None:
        return "checking coverage, writing bins and the track"


class VariantProgress(_BatchJobProgress):
    """Lines from variant effect events (hyena_platform.vep.pipeline)."""

    def plan_line(self, event: dict[str, Any]) -> str:
        return (f"scoring {event['rows']:,} ALT alleles of {event['records']:,} VCF records with {event['model']} "
                f"(flank {event['flank']:,} bases each side) in {event['chunks']} chunk(s) -> {event['output']}")

    def chunk_text(self, event: dict[str, Any]) -> str:
        return (f"{event['rows']:,} variants  {event['variants_per_s']:,.0f} variants/s  "
                f"ETA {format_duration(event.get('eta_s'))}")

    def finalize_line(self, event: dict[str, Any]) -> str | None:
        return "writing the annotated VCF (bgzip + tabix)" if event.get("vcf") else None


class EmbeddingProgress(_BatchJobProgress):
    """Lines from embedding events (hyena_platform.embed.pipeline)."""

    def plan_line(self, event: dict[str, Any]) -> str:
        return (f"embedding {event['sequences']:,} sequence(s) ({event['input']}) with {event['model']} in "
                f"{event['chunks']} chunk(s) -> {event['output']}")

    def chunk_text(self, event: dict[str, Any]) -> str:
        return (f"part {event['index']}: {event['rows']:,} rows  "
                f"elapsed {format_duration(event['elapsed_s'])}")
