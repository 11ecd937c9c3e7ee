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

    @staticmethod
    def timed(template: str, fields: dict[str, Any], clock: str) -> str:
        """`template` over `fields` (str.format_map), then the clock: "ETA" (the event's eta_s)
        or "elapsed" (elapsed_s)."""
        seconds = fields.get("eta_s") if clock == "ETA" else fields.get("elapsed_s")
        return f"{template.format_map(fields)}  {clock} {format_duration(seconds)}"


def _print_flushed(text: str) -> None:
    print(text, flush=True)


class _RunProgress(_Printer):
    """A training run's report events: resumption, a stop, the step line, validation lines."""

    def __call__(self, event: dict[str, Any]) -> None:
        for step in event.get("resumed_from") or ():
            self.line(f"resumed from the checkpoint at step {step}")
        if event.get("event") == "stopped":
            self.line(f"stopped: {event.get('message')}")
        if event.get("loss") is not None:
            self.line(self.timed(self.step_template, self.fields(event), self.step_clock))
        for v in event.get("val") or ():
            self.line(self.val_line(event, v))
        self.after(event)

    # Each job's step line is a template over its report event's fields (after `fields`), then
    # the clock; a validation line is `val_template` over one validation's fields.
    step_template: str
    step_clock: str
    val_template: str

    def fields(self, event: dict[str, Any]) -> dict[str, Any]:
        return event

    def val_line(self, event: dict[str, Any], val: dict[str, Any]) -> str:
        return self.val_template.format_map(val)

    def after(self, event: dict[str, Any]) -> None:
        """Lines a job prints after validation (fine-tuning: the test metrics)."""


class TrainingProgress(_RunProgress):
    """Lines from pretraining report events (hyena_platform.train.callback)."""

    step_template = ("[stage {stage_number}/{n_stages} L={seq_len}] step {step}/{total_steps}  loss {loss:.4f}  "
                     "{tokens_per_s:,.0f} tok/s")
    step_clock = "ETA"
    val_template = ("  held-out L={seq_len} at step {step}: loss {loss:.4f}  perplexity {perplexity:.4f}  "
                    "{bits_per_base:.4f} bits/base")

    def fields(self, event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "stage_number": event["stage"] + 1, "tokens_per_s": event.get("tokens_per_s") or 0.0}


class FinetuneProgress(_RunProgress):
    """Lines from fine-tuning report events (hyena_platform.finetune.callback)."""

    step_template = "step {step}/{total_steps}  epoch {epoch:.2f}  loss {loss:.4f}  {examples_per_s:,.1f} seq/s"
    step_clock = "elapsed"

    def fields(self, event: dict[str, Any]) -> dict[str, Any]:
        return {**event, "examples_per_s": event.get("examples_per_s") or 0.0}

    def val_line(self, event: dict[str, Any], val: dict[str, Any]) -> str:
        """The metrics a validation has (they depend on the task), then the best so far."""
        shown = "  ".join(f"{k} {x:.4f}" for k, x in val.items() if k != "step")
        probe = event.get("probe")
        where = f"valid at step {val['step']}"
        if val["step"] == 0 and probe:  # the head fitted on the frozen backbone (train.head_init: probe)
            where = f"linear probe (frozen backbone, {probe['rows']:,} train rows, C={probe['C']:g}), valid"
        return f"  {where}: {shown}  (best {event['metric']} {event.get('best_value') or 0:.4f})"

    def after(self, event: dict[str, Any]) -> None:
        if event.get("event") == "baseline":
            self.line(f"fitting the k-mer baseline ({event['features']}, linear model) ...")
        if event.get("event") == "baseline_done":
            self.line(f"  k-mer baseline: valid {event['metric']} {event['valid_value']:.4f}, test {event['metric']} "
                      f"{event['test_value']:.4f} ({event['examples']:,} train examples, fitted in "
                      f"{format_duration(event['seconds'])})")
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

    # Each job's lines are templates over its event's fields (str.format_map): the plan line,
    # the text after "[done/total chunks]", and the line before finalizing (None: no line).
    plan_template: str
    chunk_template: str
    finalize_template: str | None = None
    chunk_clock = "ETA"  # which time the chunk line ends with: "ETA" (eta_s) or "elapsed" (elapsed_s)

    def plan_line(self, event: dict[str, Any]) -> str:
        return self.plan_template.format_map(event)

    def chunk_text(self, event: dict[str, Any]) -> str:
        return self.timed(self.chunk_template, event, self.chunk_clock)

    def finalize_line(self, event: dict[str, Any]) -> str | None:
        return self.finalize_template


class ScoringProgress(_BatchJobProgress):
    """Lines from scoring events (hyena_platform.score.pipeline): start, chunk, finalize."""

    plan_template = ("scoring {bases:,} bases with {model} (window {window:,}, stride {stride:,}) "
                     "in {chunks} chunk(s) -> {output}")
    chunk_template = "{chrom}:{start:,}-{end:,}  {bases_per_s:,.0f} bases/s"
    finalize_template = "checking coverage, writing bins and the track"


class VariantProgress(_BatchJobProgress):
    """Lines from variant effect events (hyena_platform.vep.pipeline)."""

    plan_template = ("scoring {rows:,} ALT alleles of {records:,} VCF records with {model} "
                     "(flank {flank:,} bases each side) in {chunks} chunk(s) -> {output}")
    chunk_template = "{rows:,} variants  {variants_per_s:,.0f} variants/s"

    def finalize_line(self, event: dict[str, Any]) -> str | None:
        return "writing the annotated VCF (bgzip + tabix)" if event.get("vcf") else None


class EmbeddingProgress(_BatchJobProgress):
    """Lines from embedding events (hyena_platform.embed.pipeline)."""

    plan_template = "embedding {sequences:,} sequence(s) ({input}) with {model} in {chunks} chunk(s) -> {output}"
    chunk_template = "part {index}: {rows:,} rows"
    chunk_clock = "elapsed"
