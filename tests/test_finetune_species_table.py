"""The species table builder (hyena_platform.finetune.species) on a ragout-examples layout made
of real sequence (slices of the bundled V. cholerae genome): train windows at random positions,
test windows distinct tiles that never overlap, the two drawn from separate random streams."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hyena_platform.errors import InputError
from hyena_platform.finetune.species import main, species_table



@pytest.fixture
def ragout(tmp_path, bundled_bases) -> tuple[Path, dict[str, str]]:
    """ROOT/<species>/references/<strain>.fasta.gz, two strains per species; one has an N run."""
    chrom = bundled_bases["chrI"].decode()
    pieces = {("E.Coli", "MG1655-K12"): chrom[:40_000],  # the held-out strains' names: DH1, SJM180
              ("E.Coli", "DH1"): chrom[40_000:50_000] + "N" * 100 + chrom[50_000:60_000],
              ("H.Pylori", "G27"): chrom[100_000:140_000], ("H.Pylori", "SJM180"): chrom[200_000:220_000]}
    root = tmp_path / "examples"
    for (species, strain), seq in pieces.items():
        folder = root / species / "references"
        folder.mkdir(parents=True, exist_ok=True)
        with gzip.open(folder / f"{strain}.fasta.gz", "wt") as f:
            f.write(f">{strain}_chr\n" + "\n".join(seq[i:i + 80] for i in range(0, len(seq), 80)) + "\n")
    return root, {strain: seq for (_, strain), seq in pieces.items()}


def read(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_test_windows_are_distinct_tiles_without_n_and_train_windows_ignore_their_number(ragout, tmp_path):
    root, genomes = ragout
    assert species_table(root, tmp_path / "t8.parquet", windows=5, test_windows=8) == 2 * 5 + 2 * 8
    rows = read(tmp_path / "t8.parquet")
    for r in rows:
        assert r["sequence"] == genomes[r["strain"]][r["start"]:r["start"] + 1024] and set(r["sequence"]) <= set("ACGT")
    test = [r for r in rows if r["split"] == "test"]
    assert {r["strain"] for r in test} == {"DH1", "SJM180"} and {r["label"] for r in test} == {"E.Coli", "H.Pylori"}
    for strain in ("DH1", "SJM180"):
        starts = [r["start"] for r in test if r["strain"] == strain]
        assert len(set(starts)) == 8 and all(s % 1024 == 0 for s in starts)  # tiles: never overlapping
    assert all(not r["start"] <= 10_099 < r["start"] + 1024 + 99 for r in test if r["strain"] == "DH1")  # N run

    species_table(root, tmp_path / "t3.parquet", windows=5, test_windows=3)
    train = [r for r in rows if r["split"] == "train"]
    assert [r for r in read(tmp_path / "t3.parquet") if r["split"] == "train"] == train


def test_more_test_windows_than_tiles_is_one_line_naming_the_genome_and_writes_nothing(ragout, tmp_path, capsys):
    root, genomes = ragout
    dh1 = genomes["DH1"]
    tiles = sum(set(dh1[s:s + 1024]) <= set("ACGT") for s in range(0, len(dh1) - 1023, 1024))  # (K, Y here too)
    with pytest.raises(InputError, match=rf"DH1\.fasta\.gz: 30 test windows asked, but it has only {tiles} tiles"):
        species_table(root, tmp_path / "x.parquet", windows=2, test_windows=30)
    out = tmp_path / "y.parquet"
    assert main([str(root), str(out), "--test-windows", "30", "--windows", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--test-windows" in err and not out.exists()
    assert list(tmp_path.glob(".y.parquet*")) == []
