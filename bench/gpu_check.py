"""GPU check: one command that exercises every GPU path of the platform on one CUDA GPU.

    python bench/gpu_check.py                    # on a CUDA machine, <= 5 minutes
    python bench/gpu_check.py --json out.json    # also write every number as JSON
    python bench/gpu_check.py --cpu-smoke        # tiny shapes on CPU: checks the script itself

Sections (`--sections` picks some; all by default), each printing its numbers and a PASS/FAIL:
  train    bf16 autocast training steps of small-32k on bundled-genome windows, against fp32
           from the same initial weights and batches: every loss finite, and the mean loss of
           the last steps within --loss-tol nats of fp32's.
  ray      the platform's pretraining job (jobs/pretrain_smoke.yaml, small model) on Ray Train
           with use_gpu: true, backend nccl, one worker, bf16 (precision auto): trains, checkpoints
           and registers in a throw-away SQLite MLflow store.
  score    scoring (log P per base, `score_batch`) and embedding throughput, bf16 against fp32,
           with the largest |difference| of log P.
  long     a 1,000,000-token no-grad forward of large-1m, fp32 and bf16: time and peak GPU memory,
           on the path the model picks and on the channel-grouped low-memory path.
  profile  torch.profiler over a small-32k training step: device time in FFTs, in GEMMs, other.

Exit status 0 when every check passed, 1 otherwise. With --cpu-smoke every section runs at tiny
shapes on CPU (gloo instead of NCCL, fp32 ray run): tests/test_gpu_check.py runs it in CI.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from hyena import HyenaConfig, HyenaDNAForCausalLM, param_groups
from hyena.precision import autocast_context

SECTIONS = ("train", "score", "long", "profile", "ray")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Shapes:
    """Problem sizes: the real ones on a GPU, tiny ones for --cpu-smoke."""

    train_variant: str = "small-32k"
    train_length: int = 32768
    train_batch: int = 2
    train_steps: int = 30
    score_variant: str = "small-32k"
    score_length: int = 32768
    score_batch: int = 16
    long_length: int = 1_000_000
    long_overrides: dict = field(default_factory=dict)
    profile_length: int = 32768
    repeats: int = 5

    @classmethod
    def cpu_smoke(cls) -> "Shapes":
        return cls(train_length=256, train_batch=2, train_steps=3, score_variant="tiny-1k", score_length=256,
                   score_batch=2, long_length=2048, long_overrides={"n_layer": 1}, profile_length=256, repeats=1)


@dataclass
class Check:
    section: str
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def check(self, section: str, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(section, name, bool(ok), detail))
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {detail}", flush=True)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


# ----------------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median wall seconds of `repeats` calls after one warm-up call (cuFFT plans, autotuning)."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def genome_windows(length: int, count: int, seed: int = 0) -> torch.Tensor:
    """`count` random windows of `length` + 1 tokens from chrI of the bundled V. cholerae genome."""
    from hyena.tokenizer import encode_bytes
    from hyena_platform.data.fasta import fasta_reader
    from hyena_platform.genome_assets import BUNDLED_GENOME

    span = min(2_961_149, max(4 * (length + 1), 1_000_000))
    raw = fasta_reader(str(BUNDLED_GENOME)).raw("chrI", 0, span).translate(None, b"\r\n")
    ids = torch.from_numpy(encode_bytes(np.frombuffer(raw, dtype=np.uint8)).astype(np.int64))
    starts = torch.randint(0, ids.numel() - length - 1, (count,), generator=torch.Generator().manual_seed(seed))
    return torch.stack([ids[s:s + length + 1] for s in starts.tolist()])


def build(variant: str, device: torch.device, **overrides: Any) -> HyenaDNAForCausalLM:
    torch.manual_seed(0)
    return HyenaDNAForCausalLM(HyenaConfig.variant(variant, **overrides)).to(device)


def peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ----------------------------------------------------------------------------------- sections


def train_losses(model: HyenaDNAForCausalLM, batches: torch.Tensor, precision: str, device: torch.device) -> tuple[list[float], float]:
    """Loss of each AdamW step (HyenaDNA's groups, grad clip 1.0) and tokens per second."""
    model.train()
    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=6e-4, fused=device.type == "cuda")
    losses = []
    sync(device)
    t0 = time.perf_counter()
    for batch in batches:
        batch = batch.to(device)
        with autocast_context(device, precision):
            loss = model(batch[:, :-1], labels=batch[:, 1:]).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    sync(device)
    tokens = batches.shape[0] * batches.shape[1] * (batches.shape[2] - 1)
    return losses, tokens / (time.perf_counter() - t0)


def section_train(device: torch.device, shapes: Shapes, report: Report, loss_tol: float) -> None:
    s = shapes
    print(f"\n[train] {s.train_variant} L={s.train_length} B={s.train_batch}, {s.train_steps} AdamW steps, "
          f"fp32 vs bf16 autocast (same initial weights and batches)", flush=True)
    model = build(s.train_variant, device, embed_dropout=0.0)  # no dropout: the two runs see the same maths
    windows = genome_windows(s.train_length, s.train_steps * s.train_batch, seed=1)
    batches = windows.view(s.train_steps, s.train_batch, -1)
    runs = {}
    for precision in ("fp32", "bf16"):
        runs[precision] = train_losses(copy.deepcopy(model), batches, precision, device)
        losses, tps = runs[precision]
        print(f"  {precision}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, {tps:,.0f} tokens/s", flush=True)
    tail = max(1, min(5, s.train_steps // 3))
    f32, b16 = (float(np.mean(runs[p][0][-tail:])) for p in ("fp32", "bf16"))
    report.numbers["train"] = {p: {"losses": runs[p][0], "tokens_per_s": runs[p][1]} for p in runs}
    report.numbers["train"]["speedup_bf16"] = runs["bf16"][1] / runs["fp32"][1]
    report.check("train", "bf16 losses finite", all(math.isfinite(x) for x in runs["bf16"][0]),
                 f"{len(runs['bf16'][0])} steps")
    report.check("train", "bf16 close to fp32", abs(b16 - f32) <= loss_tol,
                 f"mean loss of the last {tail} steps {b16:.4f} (bf16) vs {f32:.4f} (fp32), "
                 f"|diff| {abs(b16 - f32):.4f} <= {loss_tol}; bf16 {report.numbers['train']['speedup_bf16']:.2f}x fp32")


def embedding_fn() -> Callable[[HyenaDNAForCausalLM, torch.Tensor], torch.Tensor]:
    """The embedding helper (issue #13's `hyena.embed` once on main), else mean-pooled hidden
    states of the backbone. HOOK: when `hyena.embed` lands with another signature, adapt here."""
    import hyena

    embed = getattr(hyena, "embed", None) if "embed" in getattr(hyena, "__all__", ()) else None
    if embed is not None:
        return lambda model, ids: embed(model, ids)
    return lambda model, ids: model.backbone(ids).float().mean(dim=1)


def section_score(device: torch.device, shapes: Shapes, report: Report) -> None:
    from hyena_platform.score.scorer import score_batch

    s = shapes
    print(f"\n[score] {s.score_variant} L={s.score_length} B={s.score_batch}, inference, fp32 vs bf16", flush=True)
    model = build(s.score_variant, device).eval()
    batch = genome_windows(s.score_length, s.score_batch, seed=2).to(device)
    inputs, labels = batch[:, :-1], batch[:, 1:]
    embed = embedding_fn()
    out, rates = {}, {}
    with torch.inference_mode():
        for precision in ("fp32", "bf16"):
            out[precision] = score_batch(model, inputs, labels, precision=precision)["log_prob"]
            t = timed(lambda: score_batch(model, inputs, labels, precision=precision), device, s.repeats)
            with autocast_context(device, precision):
                t_emb = timed(lambda: embed(model, inputs), device, s.repeats)
            rates[precision] = {"score_bases_per_s": inputs.numel() / t, "embed_bases_per_s": inputs.numel() / t_emb}
            print(f"  {precision}: scoring {rates[precision]['score_bases_per_s']:,.0f} bases/s, "
                  f"embedding {rates[precision]['embed_bases_per_s']:,.0f} bases/s", flush=True)
    diff = (out["bf16"] - out["fp32"]).abs().max().item()
    report.numbers["score"] = {**rates, "max_abs_logp_diff": diff}
    ok = all(torch.isfinite(v).all().item() for v in out.values())
    report.check("score", "bf16 log P finite and close", ok and diff < 0.25,
                 f"max |log P bf16 - fp32| {diff:.4f} (< 0.25); scoring bf16 "
                 f"{rates['bf16']['score_bases_per_s'] / rates['fp32']['score_bases_per_s']:.2f}x, embedding "
                 f"{rates['bf16']['embed_bases_per_s'] / rates['fp32']['embed_bases_per_s']:.2f}x fp32")


def long_forward(model: HyenaDNAForCausalLM, ids: torch.Tensor, precision: str, low_memory: bool | None,
                 device: torch.device) -> dict:
    backbone = model.backbone
    saved = backbone.low_memory_threshold
    if low_memory is not None:  # None: the model's own choice
        backbone.low_memory_threshold = 0 if low_memory else 1 << 62
    try:
        reset_peak(device)
        with torch.inference_mode(), autocast_context(device, precision):
            sync(device)
            t0 = time.perf_counter()
            hidden = backbone(ids)
            sync(device)
            wall = time.perf_counter() - t0
        return {"wall_s": wall, "peak_gib": peak_memory_gib(device), "finite": bool(torch.isfinite(hidden).all())}
    finally:
        backbone.low_memory_threshold = saved


def section_long(device: torch.device, shapes: Shapes, report: Report) -> None:
    s = shapes
    print(f"\n[long] large-1m {s.long_overrides or ''} no-grad forward of {s.long_length:,} tokens", flush=True)
    model = build("large-1m", device, **s.long_overrides).eval()
    ids = genome_windows(s.long_length - 1, 1, seed=3).to(device)
    long_forward(model, ids, "fp32", None, device)  # warm-up, not reported: FFT plans, allocator
    rows = {}
    for precision in ("fp32", "bf16"):
        for label, low in (("auto", None), ("low-memory", True)):
            r = rows[f"{precision} {label}"] = long_forward(model, ids, precision, low, device)
            peak = f"{r['peak_gib']:.2f} GiB" if r["peak_gib"] is not None else "n/a on CPU"
            print(f"  {precision:4s} {label:10s}: {r['wall_s']:7.2f} s, peak GPU memory {peak}, finite {r['finite']}",
                  flush=True)
    report.numbers["long"] = rows
    report.check("long", "1M-token forward finite", all(r["finite"] for r in rows.values()),
                 f"fastest {min(r['wall_s'] for r in rows.values()):.2f} s")


def classify_op(name: str) -> str:
    lowered = name.lower()
    if "fft" in lowered:
        return "fft"
    if lowered in {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::addbmm",
                   "aten::_addmm_activation", "aten::matmul", "aten::linear"} or "gemm" in lowered:
        return "gemm"
    return "other"


def op_time_split(prof, device: torch.device) -> dict[str, float]:
    """Self time of the profiled aten ops (device time on CUDA, CPU time on CPU) by class, in ms.

    A kernel's time counts as self device time of the op that launched it, so summing the ops'
    self times counts every kernel once."""
    split = {"fft": 0.0, "gemm": 0.0, "other": 0.0}
    for evt in prof.key_averages():
        if not evt.key.startswith("aten::"):
            continue
        if device.type == "cuda":
            us = getattr(evt, "self_device_time_total", None)
            us = us if us is not None else getattr(evt, "self_cuda_time_total", 0.0)
        else:
            us = evt.self_cpu_time_total
        split[classify_op(evt.key)] += us / 1000
    return split


def section_profile(device: torch.device, shapes: Shapes, report: Report) -> None:
    from torch.profiler import ProfilerActivity, profile

    s = shapes
    print(f"\n[profile] small-32k training step L={s.profile_length} B={s.train_batch}, bf16 autocast, "
          f"time by op class", flush=True)
    model = build("small-32k", device, embed_dropout=0.0).train()
    batch = genome_windows(s.profile_length, s.train_batch, seed=4).to(device)

    def step():
        with autocast_context(device, "bf16"):
            loss = model(batch[:, :-1], labels=batch[:, 1:]).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    step()  # warm-up outside the profile
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        sync(device)
    split = op_time_split(prof, device)
    total = sum(split.values()) or 1.0
    kind = "device" if device.type == "cuda" else "CPU"
    print("  " + ", ".join(f"{k} {v:.1f} ms ({100 * v / total:.0f}%)" for k, v in split.items()) + f" of {kind} time",
          flush=True)
    report.numbers["profile"] = {"kind": kind, **split}
    report.check("profile", "FFT and GEMM time found", split["fft"] > 0 and split["gemm"] > 0,
                 f"FFT {100 * split['fft'] / total:.0f}%, GEMM {100 * split['gemm'] / total:.0f}% of {kind} time")


def ray_job_overrides(workdir: Path, use_gpu: bool) -> list[str]:
    """--set overrides turning jobs/pretrain_smoke.yaml into the one-worker GPU (or CPU) check."""
    scaling = (["scaling.use_gpu=true", "scaling.backend=nccl", "scaling.gpus_per_worker=1",
                "scaling.cpus_per_worker=1"] if use_gpu else
               ["scaling.use_gpu=false", "scaling.backend=gloo", "scaling.cpus_per_worker=0.5"])
    return ["scaling.num_workers=1", *scaling, "scaling.threads_per_worker=1", "train.precision=auto",
            f"checkpoint.storage_path={workdir / 'runs'}", "checkpoint.name=gpu-check",
            f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}", "tracking.experiment=gpu-check",
            "tracking.register_as=hyenadna-gpu-check"]


def section_ray(device: torch.device, report: Report) -> None:
    from hyena_platform.train.config import load_job
    from hyena_platform.train.launch import run_pretrain

    use_gpu = device.type == "cuda"
    print(f"\n[ray] jobs/pretrain_smoke.yaml on Ray Train, 1 worker, use_gpu={str(use_gpu).lower()}, "
          f"backend {'nccl' if use_gpu else 'gloo'}", flush=True)
    with tempfile.TemporaryDirectory(prefix="hyena-gpu-check-") as tmp:
        job = load_job(REPO / "jobs" / "pretrain_smoke.yaml", ray_job_overrides(Path(tmp), use_gpu))
        t0 = time.perf_counter()
        result = run_pretrain(job, source="gpu_check", fresh=True, ray_logs=False)
        wall = time.perf_counter() - t0
    val = [st.val_loss for st in result.stages]
    finite = bool(val) and all(v is not None and math.isfinite(v) for v in val)
    report.numbers["ray"] = {"wall_s": wall, "tokens_per_s": result.tokens_per_s, "model_uri": result.version_uri,
                             "steps": result.steps, "val_losses": val, "timings": result.timings}
    report.check("ray", "Ray Train run trained and registered",
                 result.steps == job.train.steps and finite and bool(result.model_version),
                 f"{result.steps} steps, held-out losses {', '.join(f'{v:.3f}' for v in val if v is not None)}, "
                 f"{result.tokens_per_s or 0:,.0f} tokens/s, {wall:.0f} s end to end, registered {result.version_uri}")


# ----------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shapes on CPU (checks this script)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per precision (default 30)")
    parser.add_argument("--loss-tol", type=float, default=0.05,
                        help="largest |mean loss bf16 - fp32| over the last steps, nats (default 0.05)")
    parser.add_argument("--json", type=Path, help="write every number and check to this JSON file")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"--sections: unknown {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    return args


def run(args: argparse.Namespace) -> Report:
    if args.cpu_smoke:
        device, shapes = torch.device("cpu"), Shapes.cpu_smoke()
    elif torch.cuda.is_available():
        device, shapes = torch.device("cuda", 0), Shapes()
    else:
        raise SystemExit("gpu_check: no CUDA GPU visible (torch.cuda.is_available() is False); run it on a "
                         "GPU machine, or pass --cpu-smoke to check the script at tiny shapes on CPU")
    if args.steps is not None:
        shapes = Shapes(**{**shapes.__dict__, "train_steps": args.steps})
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke)"
    print(f"gpu_check on {name}: torch {torch.__version__}, CUDA {torch.version.cuda}, sections {','.join(args.sections)}")
    report = Report(numbers={"device": name, "torch": torch.__version__, "cuda": torch.version.cuda})
    t0 = time.perf_counter()
    runners = {"train": lambda: section_train(device, shapes, report, args.loss_tol),
               "score": lambda: section_score(device, shapes, report),
               "long": lambda: section_long(device, shapes, report),
               "profile": lambda: section_profile(device, shapes, report),
               "ray": lambda: section_ray(device, report)}
    for section in args.sections:
        start = time.perf_counter()
        try:
            runners[section]()
        except Exception as err:  # noqa: BLE001 - one failing section must not hide the others' results
            report.check(section, f"{section} ran", False, f"{type(err).__name__}: {err}")
        report.numbers.setdefault("section_s", {})[section] = round(time.perf_counter() - start, 1)
    report.numbers["total_s"] = round(time.perf_counter() - t0, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print(f"\n{sum(c.ok for c in report.checks)}/{len(report.checks)} checks passed in {report.numbers['total_s']:.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in report.numbers['section_s'].items())})")
    if args.json:
        payload = {"ok": report.ok, "checks": [c.__dict__ for c in report.checks], "numbers": report.numbers}
        args.json.write_text(json.dumps(payload, indent=1, default=str))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
