"""`--fresh` (demo work directory, pretraining run directory) deletes only what our jobs wrote:
a directory holding anything else is refused before any work, and nothing in it is deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyena_platform.errors import InputError
from hyena_platform.outputs import MARKER_NAME

REPO = Path(__file__).resolve().parents[1]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_demo_fresh_refuses_a_directory_it_did_not_write(tmp_path, capsys):
    from hyena_platform.cli import main

    home = tmp_path / "home"
    (home / "thesis").mkdir(parents=True)
    (home / "thesis" / "chapter1.tex").write_text("years of work")
    (home / "mlflow.db").write_text("someone else's store")
    assert main(["demo", "--workdir", str(home), "--fresh", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--fresh refused" in err and "\n" not in err
    assert tree(home) == ["mlflow.db", "thesis", "thesis/chapter1.tex"]
    assert main(["demo", "--workdir", str(home), "--quick"]) == 2  # nor is it written into
    assert "not empty" in capsys.readouterr().err and tree(home) == ["mlflow.db", "thesis", "thesis/chapter1.tex"]


def test_demo_fresh_deletes_only_demo_files(tmp_path):
    from hyena_platform.demo.run import demo_output

    work = tmp_path / "demo"
    out = demo_output(work)
    out.claim()
    for rel in ("mlflow.db", "runs/hyena-demo/checkpoint_00000008/model.safetensors", "scores/_manifest.json",
                "plots/loss.png", "summary.txt", "mlartifacts/1/x/artifacts/model/config.json"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text("x")
    (work / "plots" / "my-figure.svg").write_text("mine")
    before = tree(work)
    with pytest.raises(InputError, match=r"holds files this job did not write \(plots/my-figure.svg\)"):
        out.clear(what="--fresh")
    assert tree(work) == before  # nothing deleted
    (work / "plots" / "my-figure.svg").unlink()
    out.clear(what="--fresh")
    assert tree(work) == [MARKER_NAME]


def test_pretrain_fresh_refuses_a_run_directory_that_is_not_ray_trains(tmp_path, capsys):
    """storage_path + name pointing at a user's directory: --fresh deleted it before."""
    from hyena_platform.cli import main

    data = tmp_path / "data" / "genomes"
    data.mkdir(parents=True)
    (data / "hg38.fa").write_text(">chr1\nACGT\n")
    assert main(["pretrain", str(REPO / "jobs" / "pretrain_local.yaml"), "--fresh",
                 "--set", f"checkpoint.storage_path={tmp_path / 'data'}", "--set", "checkpoint.name=genomes",
                 "--set", f"tracking.uri=sqlite:///{tmp_path}/m.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--fresh refused" in err and "\n" not in err
    assert tree(data) == ["hg38.fa"]


def test_pretrain_fresh_deletes_ray_train_files_only(tmp_path):
    from hyena_platform.train.rundir import run_directory

    run = run_directory(str(tmp_path / "runs"), "r1")
    for rel in ("checkpoint_00000004/model/model.safetensors", "checkpoint_manager_snapshot.json",
                ".validate_storage_marker"):
        (tmp_path / "runs" / "r1" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "runs" / "r1" / rel).write_text("x")
    assert run.is_ours()  # a run directory written before markers: Ray Train's files only
    run.claim()
    (tmp_path / "runs" / "r1" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"notes.txt"):
        run.clear(what="--fresh")
    (tmp_path / "runs" / "r1" / "notes.txt").unlink()
    run.clear(what="--fresh")
    assert tree(tmp_path / "runs" / "r1") == [MARKER_NAME]
