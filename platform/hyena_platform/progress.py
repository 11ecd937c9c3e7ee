"""Progress on the terminal, for every command: one module, one look.

Jobs emit progress *events* (plain dicts: a training report, a scored chunk, ...) to a callback;
the printers here turn them into lines. Lines, not redrawn bars, because the same output goes to
a terminal, to `ray job logs` and to CI logs, where a bar's carriage returns become noise. Times
are formatted with tqdm's `format_interval` (H:MM:SS), rates are rate-limited per printer.

- `TrainingProgress`: one line per training report (stage, step, loss, tokens/s, ETA) and one
  per held-out validation; used by `hyena pretrain` and `hyena demo`.
- `ScoringProgress`: the plan, then a chunk line at most every `every_s` seconds (and the last).
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


class ScoringProgress(_Printer):
    """Lines from scoring events (hyena_platform.score.pipeline): start, chunk, finalize."""

    def __init__(self, echo: Echo | None = None, *, indent: str = "", every_s: float = 5.0):
        super().__init__(echo, indent=indent)
        self.every_s, self.last = every_s, float("-inf")

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            skipped = event["chunks"] - event["pending"]
            self.line(f"scoring {event['bases']:,} bases with {event['model']} (window {event['window']:,}, "
                      f"stride {event['stride']:,}) in {event['chunks']} chunk(s) -> {event['output']}")
            if skipped and event["pending"]:
                self.line(f"resuming: {skipped} chunk(s) already written, {event['pending']} to go")
            elif skipped:
                self.line("every chunk is already written")
        elif kind == "chunk":
            now = time.monotonic()
            if now - self.last < self.every_s and event["done"] < event["total"]:
                return
            self.last = now
            self.line(f"[{event['done']}/{event['total']} chunks] {event['chrom']}:{event['start']:,}-"
                      f"{event['end']:,}  {event['bases_per_s']:,.0f} bases/s  "
                      f"ETA {format_duration(event.get('eta_s'))}")
        elif kind == "finalize":
            self.line("checking coverage, writing bins and the track")
