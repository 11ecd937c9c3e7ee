"""A job's driver (`hyena pretrain` / `hyena finetune`) run as a subprocess and SIGKILLed right
after Ray Train committed its first checkpoint: the resume tests of both jobs start here."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def run_cli(command: str, tmp: Path, job_file: Path, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hyena_platform.cli", command, str(job_file), *extra],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def kill_after_first_checkpoint(command: str, tmp: Path, job_file: Path, env: dict, storage: Path,
                                timeout_s: float = 240) -> tuple[list[str], list[int]]:
    """(the killed driver's output lines, the steps of the checkpoints it left)."""
    first = run_cli(command, tmp, job_file, env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(first.stdout), daemon=True)
    reader.start()
    snapshot = storage / "checkpoint_manager_snapshot.json"  # Ray Train's record of committed checkpoints
    deadline = time.time() + timeout_s
    while not (snapshot.is_file() and "checkpoint_0" in snapshot.read_text()):
        assert first.poll() is None, "".join(lines)
        assert time.time() < deadline, f"no checkpoint within {timeout_s:.0f} s:\n" + "".join(lines)
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    reader.join(timeout=5)
    return lines, [json.loads(p.read_text())["step"] for p in storage.glob("checkpoint_*/meta.json")]
