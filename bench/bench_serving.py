"""Serving benchmark: a registered MLflow Model against a direct forward, measured in the same run.

    python bench/bench_serving.py            # tiny-1k geometry, 32 real 1,024-base windows
    python bench/bench_serving.py --quick    # 8 windows, fewer repeats

Registers a tiny-1k model in a temporary SQLite store, then times the same per-base
log-likelihoods three ways, alternating: the model's forward + log-softmax called directly,
`mlflow.pyfunc.load_model(...).predict(df)` in this process, and a POST to a real
`mlflow models serve --env-manager local` on 127.0.0.1 (one worker, one torch thread). Prints
bases per CPU-second and the ratio to the direct forward: CPU time of this process for the
in-process paths, of the server's processes for HTTP (JSON encoding and parsing included), so
the ratios hold on a machine that other work is also using.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

from hyena import HyenaConfig, HyenaDNAForCausalLM, Tokenizer
from hyena.tokenizer import SEP
from hyena_platform import tracking
from hyena_platform.genome_assets import BUNDLED_GENOME


def windows(count: int, length: int = 1024) -> list[str]:
    import pyfaidx

    chrom = str(pyfaidx.Fasta(str(BUNDLED_GENOME))["chrII"][:count * length]).upper()
    return [chrom[i * length:(i + 1) * length] for i in range(count)]


def direct(model, seqs: list[str], batch: int = 8) -> list[np.ndarray]:
    out = []
    with torch.inference_mode():
        for s in range(0, len(seqs), batch):
            ids = torch.from_numpy(np.stack([Tokenizer().encode(x) for x in seqs[s:s + batch]])).long()
            inputs = torch.cat([torch.full_like(ids[:, :1], SEP), ids[:, :-1]], 1)
            logp = torch.log_softmax(model(inputs).logits.float(), -1).gather(-1, ids[..., None])[..., 0]
            out.extend(logp.numpy())
    return out


def serve(uri: str, name: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}@candidate",
                             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/ping", timeout=2):
                return proc, base
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGTERM)
    raise SystemExit("mlflow models serve did not start")


def server_cpu(proc: subprocess.Popen) -> float:
    """CPU seconds used so far by the server and its workers (user + system)."""
    import psutil

    total = 0.0
    for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
        times = p.cpu_times()
        total += times.user + times.system
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count, repeats = (8, 2) if args.quick else (32, 3)
    torch.set_num_threads(1)
    import mlflow
    import pandas as pd

    seqs = windows(count)
    torch.manual_seed(0)
    model = HyenaDNAForCausalLM(HyenaConfig.variant("tiny-1k")).eval()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = tracking.TrackingConfig(uri="sqlite:///mlflow.db", register_as="bench").resolved(tmp)
        run_id = tracking.start_run(cfg, run_key="bench", run_name="bench")
        tracking.register_model_dir(cfg, run_id, model.save_pretrained(Path(tmp) / "ckpt"))
        mlflow.set_tracking_uri(cfg.uri)
        pyfunc = mlflow.pyfunc.load_model("models:/bench@candidate")
        frame = pd.DataFrame({"sequence": seqs})
        payload = json.dumps({"dataframe_split": frame.to_dict(orient="split", index=False)}).encode()
        proc, base = serve(cfg.uri, "bench")
        try:
            def http():
                request = urllib.request.Request(base + "/invocations", payload, {"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=600) as response:
                    return json.loads(response.read())["predictions"]

            cases = {"direct forward": lambda: direct(model, seqs),
                     "pyfunc predict": lambda: pyfunc.predict(frame, params={"batch_size": 8})}
            best = {k: float("inf") for k in (*cases, "HTTP /invocations")}
            diff = 0.0
            for _ in range(repeats):  # alternate, so a busy moment hits every case alike
                for key, fn in cases.items():
                    c0 = time.process_time()
                    fn()
                    best[key] = min(best[key], time.process_time() - c0)
                c0 = server_cpu(proc)
                rows = http()
                best["HTTP /invocations"] = min(best["HTTP /invocations"], server_cpu(proc) - c0)
            for row, want in zip(rows, direct(model, seqs)):
                diff = max(diff, float(np.abs(np.asarray(row["log_likelihood"]) - want).max()))
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    bases = count * 1024
    print(f"tiny-1k, {count} windows of 1,024 bases of V. cholerae chrII, batch 8, 1 torch thread in this process")
    print(f"{'path':<20} {'bases/CPU-s':>12} {'vs direct':>10}")
    for key, seconds in best.items():
        print(f"{key:<20} {bases / seconds:>12,.0f} {best['direct forward'] / seconds:>9.2f}x")
    print(f"max |HTTP - direct| log-likelihood: {diff:.1e}")


if __name__ == "__main__":
    main()
