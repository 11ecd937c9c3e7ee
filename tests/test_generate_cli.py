"""`hyena generate`: FASTA out, equal to the library for the same seed, per-base log-likelihoods,
prompts from a string or a FASTA region, and bad input failing in one line with nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

import hyena
from hyena_platform.cli import main

MODEL = Path(__file__).parent / "assets" / "multimolecule" / "shared_freqs"  # l_max 258


def _fasta(text: str) -> dict[str, str]:
    records, name = {}, None
    for line in text.splitlines():
        if line.startswith(">"):
            name = line[1:]
            records[name] = ""
        else:
            records[name] += line
    return records


def test_string_prompt_matches_the_library_and_reports_log_likelihoods(tmp_path, capsys):
    out, tsv = tmp_path / "gen.fa", tmp_path / "ll.tsv"
    args = ["generate", "--model", str(MODEL), "--prompt", "ACGTTGCAAC", "--max-new-tokens", "100",
            "--top-p", "0.9", "--seed", "5", "--num-return-sequences", "2", "-o", str(out),
            "--log-likelihoods", str(tsv), "--line-width", "60"]
    assert main(args) == 0
    assert "mean log-likelihood" in capsys.readouterr().err
    records = _fasta(out.read_text())
    assert len(records) == 2 and all(len(s) == 100 and set(s) <= set("ACGT") for s in records.values())
    assert max(len(line) for line in out.read_text().splitlines() if not line.startswith(">")) == 60
    model = hyena.from_pretrained(MODEL).eval()
    ids = [1] + hyena.Tokenizer().encode("ACGTTGCAAC").tolist()
    lib = hyena.generate(model, ids, 100, top_p=0.9, seed=5, num_return_sequences=2)
    expected = [hyena.Tokenizer().decode(row[11:]) for row in lib.sequences]
    assert list(records.values()) == expected
    header = list(records)[0]
    assert f"mean_log_likelihood={lib.log_likelihoods[0].mean():.4f}" in header and "seed=5" in header
    rows = tsv.read_text().splitlines()
    assert rows[0] == "sequence\tposition\tbase\tlog_likelihood" and len(rows) == 201
    first = rows[1].split("\t")
    assert first[:3] == ["generated_1", "0", expected[0][0]]
    assert abs(float(first[3]) - lib.log_likelihoods[0, 0].item()) < 1e-5
    # Same seed, same output (stdout this time).
    assert main(args[:-6] + ["--num-return-sequences", "2"]) == 0
    assert list(_fasta(capsys.readouterr().out).values()) == expected


def test_region_prompt_greedy(tmp_path, capsys, bundled_genome):
    assert main(["generate", "--model", str(MODEL), "--fasta", str(bundled_genome), "--region",
                 "chrI:1000-1200", "--max-new-tokens", "57", "--greedy"]) == 0
    (header, seq), = _fasta(capsys.readouterr().out).items()
    assert "prompt=chrI:1000-1200" in header and "greedy" in header and len(seq) == 57


@pytest.mark.parametrize("extra, message", [
    (["--prompt", "ACGXT"], "--prompt: sequence: character 'X' at position 3"),
    (["--prompt", "A" * 258], "the prompt has 258 bases + [SEP] but this model's l_max is 258"),
    (["--prompt", "ACGT", "--max-new-tokens", "254"], "prompt (4 bases + [SEP]) + --max-new-tokens (254) = 259 exceeds this model's l_max 258: set --max-new-tokens to at most 253"),
    (["--prompt", "ACGT", "--top-p", "0", "--max-new-tokens", "9"], "--top-p must be in (0, 1], got 0.0"),
    (["--prompt", "ACGT", "--temperature", "0", "--max-new-tokens", "9"], "--temperature must be > 0 when sampling"),
    (["--region", "chrI:5-1"], "--region needs --fasta FILE"),
    (["--prompt", "ACGT", "--record", "chrI"], "give one prompt"),
])
def test_bad_input_one_line_nonzero_nothing_written(tmp_path, capsys, extra, message):
    out = tmp_path / "gen.fa"
    code = main(["generate", "--model", str(MODEL), "-o", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and message in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_region_outside_the_record(tmp_path, capsys, bundled_genome):
    code = main(["generate", "--model", str(MODEL), "--fasta", str(bundled_genome), "--region", "chrII:10-99999999"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "outside chrII" in err and len(err.splitlines()) == 1


def test_generation_fills_to_l_max_exactly(capsys):
    assert main(["generate", "--model", str(MODEL), "--prompt", "ACGT", "--max-new-tokens", "253", "--greedy"]) == 0
    (_, seq), = _fasta(capsys.readouterr().out).items()
    assert len(seq) == 253
