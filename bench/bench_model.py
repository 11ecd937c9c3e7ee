"""Model benchmark: our HyenaDNA against the official standalone code and MultiMolecule, in one run.

    python bench/bench_model.py                          # 1k..256k vs official, MultiMolecule rows
    python bench/bench_model.py --long                   # also 512k and 1M (one run each, fresh processes)
    python bench/bench_model.py --long-only --long-lengths 262144,524288,1000000 --official-long-max 524288
    python bench/bench_model.py --official PATH          # offline: a local standalone_hyenadna.py
    python bench/bench_model.py --lengths 1024,131072 --repeats 3 --skip-mm
    python bench/bench_model.py --paths                  # also the channel-group measurement
    python bench/bench_model.py --lengths 1024,16384 --warm --skip-mm   # also ours with the filter cache
    python bench/bench_model.py --mm-only                # only the MultiMolecule rows
    python bench/bench_model.py --lengths 1024,4096,16384,32768,65536,131072 --repeats 2 \
        --long --long-lengths 262144,524288,1000000 --n-layer 1 --all-layers-at 1000000
                                                         # issue 17's table in one run (~30 min)

1. No-grad forward, large-1m geometry (d_model 256, 8 layers, l_max 1,000,002), batch 1, the same
   random weights in both: ours (`model.backbone`) against the official `HyenaDNAModel` from
   HazyResearch/hyena-dna's `standalone_hyenadna.py`, fetched at run time into a scratch folder
   (bench/official_hyenadna.py; never stored in this repository). Each length alternates the
   two, `--repeats` times, on one torch thread; ours runs cold (filter cache cleared before each
   call, as the official code recomputes its filter every call). Reported: the best CPU time and
   wall time of each, the ratio official / ours (> 1: ours faster) and the largest |difference|
   of the final hidden states. Lengths >= 512k (--long) run once each in a fresh process
   (official included unless --no-official-long: it needs ~21 GB at 1M) with the peak RSS.
2. MultiMolecule (`multimolecule` 0.2.2, if importable): eval forward at tiny-1k (L=1024, B=8) and
   a training step (forward + backward + AdamW) at tiny-1k and small-32k, alternated, same
   weights loaded through `hyena.export_multimolecule`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

import hyena
from hyena import HyenaConfig, HyenaDNAForCausalLM

SHORT_LENGTHS = (1024, 4096, 16384, 32768, 65536, 131072, 262144)
LONG_LENGTHS = (524288, 1_000_000)


def alternate(fns: dict[str, Callable[[], object]], repeats: int, before: Callable[[], None] = lambda: None,
              warmup: bool = True) -> dict:
    """Best CPU and wall seconds of each function over `repeats` rounds, alternating the order
    every round, after one warm-up call each (unless not `warmup`). CPU time (one torch thread)
    is the stable measure on a machine that other work is also using."""
    for fn in fns.values() if warmup else ():
        before()
        fn()
    best = {name: [float("inf"), float("inf")] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            before()
            c0, w0 = time.process_time(), time.perf_counter()
            fns[name]()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            best[name] = [min(best[name][0], cpu), min(best[name][1], wall)]
    return {name: {"cpu_s": v[0], "wall_s": v[1]} for name, v in best.items()}


def clear_filter_caches(model: torch.nn.Module) -> None:
    for module in model.modules():
        if hasattr(module, "clear_cache"):
            module.clear_cache()


# ------------------------------------------------------------------------- ours vs official


def official_module(path: str | None):
    from official_hyenadna import fetch_official, load_module

    return load_module(fetch_official(path))


def large_pair(module, n_layer: int | None = None):
    torch.manual_seed(0)
    overrides = {} if n_layer is None else {"n_layer": n_layer}
    ours = HyenaDNAForCausalLM(HyenaConfig.variant("large-1m", **overrides)).eval()
    from official_hyenadna import official_backbone

    return ours, official_backbone(ours, module)


def bench_vs_official(module, lengths: list[int], repeats: int, warm: bool = False) -> list[dict]:
    """Ours cold (filter recomputed, as the official code does) against official; with `warm`
    also ours with the eval filter cache (how scoring runs: same weights, many calls)."""
    ours, official = large_pair(module)
    rows = []
    for length in lengths:
        ids = torch.randint(7, 11, (1, length), generator=torch.Generator().manual_seed(length))
        with torch.inference_mode():
            diff = (ours.backbone(ids) - official(ids)).abs().max().item()
            reps = repeats if length <= 32768 else max(1, repeats // 2)
            def cold():  # the official code recomputes its filter every call: so does this one
                clear_filter_caches(ours)
                ours.backbone(ids)

            fns = {"ours": cold, "official": lambda: official(ids)}
            if warm:  # scoring and embedding call the model many times with the same weights
                fns["ours_warm"] = lambda: ours.backbone(ids)
            t = alternate(fns, reps, warmup=length <= 32768)
        row = {"length": length, **{f"{k}_{m}": v[m] for k, v in t.items() for m in ("cpu_s", "wall_s")},
               "max_abs_hidden_diff": diff}
        rows.append(row)
        print_official_row(row)
    return rows


def bench_paths(lengths: list[int], repeats: int) -> list[dict]:
    """The no-grad operator with all channels at once against channel groups, alternated (large-1m
    geometry, 2 layers): the measurement behind HyenaDNAModel.inference_channel_group."""
    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(HyenaConfig.variant("large-1m", n_layer=2)).eval().backbone
    cls = type(model)
    rows = []
    for length in lengths:
        ids = torch.randint(7, 11, (1, length), generator=torch.Generator().manual_seed(length))
        fns = {}
        for group in (256, 64, 32):
            def run(group=group):
                saved = cls.inference_channel_group
                cls.inference_channel_group = lambda self, b, n: group
                try:
                    model(ids)
                finally:
                    cls.inference_channel_group = saved
            fns[group] = run
        with torch.inference_mode():
            t = alternate(fns, repeats, before=lambda: clear_filter_caches(model), warmup=False)
        row = {"length": length, **{f"group_{g}_cpu_s": v["cpu_s"] for g, v in t.items()}}
        rows.append(row)
        print(f"{length:>10,}  " + "  ".join(f"G={g}: {v['cpu_s']:7.2f} s" for g, v in t.items())
              + f"   G=32 / G=256: {t[32]['cpu_s'] / t[256]['cpu_s']:.2f}", flush=True)
    return rows


def print_official_row(r: dict) -> None:
    if "error" in r:
        print(f"{r['length']:>10,}  {r['error']}", flush=True)
        return
    ratio_cpu = r["official_cpu_s"] / r["ours_cpu_s"] if r.get("official_cpu_s") else float("nan")
    ratio_wall = r["official_wall_s"] / r["ours_wall_s"] if r.get("official_wall_s") else float("nan")
    extra = "".join(f"  {k} {r[k]:.2f} GiB" for k in ("ours_peak_gib", "official_peak_gib") if r.get(k))
    if r.get("ours_warm_cpu_s"):
        extra += (f"  warm (filter cached) {r['ours_warm_cpu_s']:.2f} s "
                  f"{r['official_cpu_s'] / r['ours_warm_cpu_s']:.2f}x CPU")
    diff = f"{r['max_abs_hidden_diff']:.1e}" if r.get("max_abs_hidden_diff") is not None else "-"
    print(f"{r['length']:>10,}  {r.get('official_cpu_s', float('nan')):9.2f} {r['ours_cpu_s']:9.2f}  "
          f"{ratio_cpu:6.2f}x CPU {ratio_wall:6.2f}x wall  diff {diff}{extra}", flush=True)


def _vm_hwm_kib() -> int:
    """Peak RSS of this process image (VmHWM); unlike ru_maxrss not inherited across exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def forward_child(length: int, impl: str, official_path: str | None, n_layer: int | None = None) -> None:
    """One forward in a fresh process, so that the peak RSS is this forward's alone."""
    torch.set_num_threads(1)
    module = official_module(official_path) if impl == "official" else None
    if module is not None:
        _, model = large_pair(module, n_layer)
    else:
        torch.manual_seed(0)
        overrides = {} if n_layer is None else {"n_layer": n_layer}
        model = HyenaDNAForCausalLM(HyenaConfig.variant("large-1m", **overrides)).eval().backbone
    ids = torch.randint(7, 11, (1, length), generator=torch.Generator().manual_seed(length))
    before = _vm_hwm_kib()
    c0, w0 = time.process_time(), time.perf_counter()
    with torch.inference_mode():
        hidden = model(ids)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "peak_gib": _vm_hwm_kib() / 2**20,
                      "model_gib": before / 2**20, "finite": bool(torch.isfinite(hidden).all())}))


def run_child(length: int, impl: str, official_path: str | None, n_layer: int | None = None) -> dict:
    cmd = [sys.executable, __file__, "--forward-child", str(length), "--impl", impl]
    if official_path:
        cmd += ["--official", official_path]
    if n_layer:
        cmd += ["--n-layer", str(n_layer)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_long(lengths: list[int], official_path: str | None, official_max: int,
               n_layer: int | None = None) -> list[dict]:
    """Each length: ours then official (if length <= official_max), each in a fresh process.
    `n_layer`: build large-1m with this many layers (the layers are identical in shape, so one
    layer gives the per-layer time ratio and the activation peak at a fraction of the CPU)."""
    rows = []
    for length in lengths:
        with_official = length <= official_max
        ours = run_child(length, "ours", official_path, n_layer)
        row = {"length": length}
        if "error" in ours:
            row["error"] = f"ours failed: {ours['error']}"
        else:
            row.update(ours_cpu_s=ours["cpu_s"], ours_wall_s=ours["wall_s"], ours_peak_gib=ours["peak_gib"],
                       ours_model_gib=ours["model_gib"], n_layer=n_layer or 8, max_abs_hidden_diff=None)
            if with_official:
                off = run_child(length, "official", official_path, n_layer)
                if "error" in off:
                    print(f"  official at {length:,} failed: {off['error']}")
                else:
                    row.update(official_cpu_s=off["cpu_s"], official_wall_s=off["wall_s"],
                               official_peak_gib=off["peak_gib"], official_model_gib=off["model_gib"])
        rows.append(row)
        print_official_row(row)
    return rows


def bench_all_layers(length: int, official_path: str | None) -> dict:
    """Ours with all 8 layers of large-1m at `length` in a fresh process: the whole model's peak
    RSS, which the per-layer rows only estimate (issue 17: 1,000,000 tokens in <= 6 GB)."""
    row = {"length": length, **run_child(length, "ours", official_path, None)}
    if "error" in row:
        print(f"  ours, 8 layers at {length:,}: failed: {row['error']}")
    else:
        print(f"  ours, all 8 layers at {length:,}: {row['cpu_s']:.1f} CPU s, {row['wall_s']:.1f} s wall, "
              f"peak RSS {row['peak_gib']:.2f} GiB (goal <= 6 GB = 5.59 GiB)", flush=True)
    return row


# ------------------------------------------------------------------------- MultiMolecule


def load_multimolecule(model: HyenaDNAForCausalLM):
    """The same weights in MultiMolecule's HyenaDnaForCausalLM, or None if it is not installed."""
    try:
        from multimolecule.models import HyenaDnaForCausalLM
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        hyena.export_multimolecule(model, Path(tmp) / "mm")
        return HyenaDnaForCausalLM.from_pretrained(str(Path(tmp) / "mm")).eval()


def mm_ids(ids: torch.Tensor) -> torch.Tensor:
    return torch.tensor(hyena.checkpoint.OFFICIAL_TO_MM)[ids]


def bench_mm_eval(variant: str, length: int, batch: int, repeats: int) -> dict | None:
    torch.manual_seed(0)
    ours = HyenaDNAForCausalLM(HyenaConfig.variant(variant)).eval()
    theirs = load_multimolecule(ours)
    if theirs is None:
        return None
    ids = torch.randint(7, 12, (batch, length))
    x = mm_ids(ids)
    with torch.inference_mode():
        diff = (theirs(x).logits[..., hyena.checkpoint.OFFICIAL_TO_MM] - ours(ids).logits).abs().max().item()
        t = alternate({"ours": lambda: ours(ids), "mm": lambda: theirs(x)}, repeats)
    return {"case": f"eval {variant} L={length} B={batch}", "tokens": batch * length, **t, "diff": diff}


def bench_mm_train(variant: str, length: int, batch: int, repeats: int) -> dict | None:
    torch.manual_seed(0)
    ours = HyenaDNAForCausalLM(HyenaConfig.variant(variant, embed_dropout=0.0)).train()
    theirs = load_multimolecule(ours)
    if theirs is None:
        return None
    theirs.train()
    ids = torch.randint(7, 12, (batch, length + 1))
    x, y = mm_ids(ids[:, :-1]), mm_ids(ids[:, 1:])

    def step_fn(model, loss_of):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)
            loss_of(model).backward()
            opt.step()
        return step

    def mm_loss(m):
        logits = m(x).logits
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

    t = alternate({"ours": step_fn(ours, lambda m: m(ids[:, :-1], labels=ids[:, 1:]).loss),
                   "mm": step_fn(theirs, mm_loss)}, repeats)
    return {"case": f"train step {variant} L={length} B={batch}", "tokens": batch * length, **t}


def print_mm_rows(rows: list[dict]) -> None:
    print(f"{'case':36s} {'ours tok/CPU-s':>15s} {'MM tok/CPU-s':>13s} {'ratio CPU':>9s} {'ratio wall':>10s}")
    for r in rows:
        ours, mm = r["tokens"] / r["ours"]["cpu_s"], r["tokens"] / r["mm"]["cpu_s"]
        wall = r["mm"]["wall_s"] / r["ours"]["wall_s"]
        extra = f"  (max |logit diff| {r['diff']:.1e})" if "diff" in r else ""
        print(f"{r['case']:36s} {ours:15,.0f} {mm:13,.0f} {ours / mm:8.2f}x {wall:9.2f}x{extra}", flush=True)


# ------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", help="path of standalone_hyenadna.py (default: download the pinned file)")
    parser.add_argument("--lengths", help=f"comma-separated lengths (default {','.join(map(str, SHORT_LENGTHS))})")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--long", action="store_true", help=f"also {', '.join(map(str, LONG_LENGTHS))}, fresh processes")
    parser.add_argument("--no-official-long", action="store_true", help="long lengths: ours only (official 1M needs ~21 GB)")
    parser.add_argument("--long-lengths", help=f"lengths of --long (default {','.join(map(str, LONG_LENGTHS))})")
    parser.add_argument("--official-long-max", type=int, default=None,
                        help="--long: run the official code only up to this length (default: all)")
    parser.add_argument("--mm-only", action="store_true", help="only the MultiMolecule rows")
    parser.add_argument("--warm", action="store_true", help="also time ours with the eval filter cache")
    parser.add_argument("--long-only", action="store_true", help="only the --long rows (implies --long)")
    parser.add_argument("--n-layer", type=int, help="--long: large-1m with this many layers (default 8)")
    parser.add_argument("--all-layers-at", type=int,
                        help="--long with --n-layer: also ours with all 8 layers at this length (the memory goal)")
    parser.add_argument("--skip-mm", action="store_true", help="no MultiMolecule rows")
    parser.add_argument("--paths", action="store_true", help="also time channel groups 256/64/32 at lengths >= 32k")
    parser.add_argument("--forward-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=["ours", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="write every number to this JSON file")
    args = parser.parse_args()
    if args.forward_child:
        forward_child(args.forward_child, args.impl, args.official, args.n_layer)
        return
    torch.set_num_threads(1)
    official_path = args.official
    if official_path is None:  # download once; long-context children reuse the file
        from official_hyenadna import fetch_official

        official_path = str(fetch_official(None))
    module = official_module(official_path)
    lengths = [int(x) for x in args.lengths.split(",")] if args.lengths else list(SHORT_LENGTHS)
    if args.long_only:
        args.long, args.skip_mm, lengths = True, True, []
    if args.mm_only:
        lengths = []
    print(f"torch {torch.__version__}, 1 thread; official: {official_path}; load average {os.getloadavg()[0]:.0f}")
    results = {}
    if lengths:
        print("\n1. no-grad forward, large-1m geometry, batch 1 (best of alternated runs; ratio = official / ours)")
        print(f"{'tokens':>10s}  {'official':>9s} {'ours':>9s}  (CPU seconds)")
        results["vs_official"] = bench_vs_official(module, lengths, args.repeats, args.warm)
    if args.paths:
        print("\n1b. path selection: channel groups of the no-grad operator (CPU seconds, 2 layers)")
        results["paths"] = bench_paths([n for n in lengths if n >= 65536], max(1, args.repeats // 2))
    if not args.skip_mm:
        print("\n2. against MultiMolecule (same weights; ratio = ours / MultiMolecule throughput)")
        rows = [r for r in (bench_mm_eval("tiny-1k", 1024, 8, args.repeats + 2),
                            bench_mm_train("tiny-1k", 1024, 8, args.repeats + 2),
                            bench_mm_train("small-32k", 32768, 1, max(2, args.repeats // 2))) if r is not None]
        if rows:
            print_mm_rows(rows)
        else:
            print("  multimolecule is not installed: skipped")
        results["vs_multimolecule"] = rows
    if args.long:
        print(f"\n3. long context, large-1m with {args.n_layer or 8} layer(s), one run each in a fresh process "
              "(CPU seconds, peak RSS)")
        long_lengths = [int(x) for x in args.long_lengths.split(",")] if args.long_lengths else list(LONG_LENGTHS)
        official_max = 0 if args.no_official_long else (args.official_long_max or max(long_lengths))
        results["long"] = bench_long(long_lengths, official_path, official_max, args.n_layer)
        if args.all_layers_at:
            results["all_layers"] = bench_all_layers(args.all_layers_at, official_path)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
