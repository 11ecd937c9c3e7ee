"""Fine-tuning data: tables (CSV/TSV/Parquet), GenomicBenchmarks folders, FASTA+BED per-base labels,
every bad input as one line naming the file and row; metrics; the k-mer baseline."""

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hyena.tokenizer import Tokenizer
from hyena_platform.errors import InputError
from hyena_platform.finetune import kmer
from hyena_platform.finetune.data import load_task_data
from hyena_platform.finetune.examples import Split, TaskData, balanced_class_weights, fit_lengths
from hyena_platform.finetune.data_config import FinetuneDataConfig
from hyena_platform.finetune.metrics import compute_metrics


@pytest.fixture(scope="module")
def windows(bundled_genome):
    """Real 200-base windows of V. cholerae chrII, labelled GC-rich / AT-rich by their own content."""
    import pyfaidx

    chrom = str(pyfaidx.Fasta(str(bundled_genome))["chrII"][100000:140000]).upper()
    seqs = [chrom[i:i + 200] for i in range(0, len(chrom), 200)]
    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in seqs])
    labels = np.where(gc > np.median(gc), "gc_rich", "at_rich")
    return seqs, labels


def write_csv(path, header, rows, sep=","):
    path.write_text(sep.join(header) + "\n" + "".join(sep.join(map(str, r)) + "\n" for r in rows))
    return str(path)


def table_with_splits(tmp_path, windows, name="t.csv", sep=","):
    seqs, labels = windows
    splits = ["train"] * 120 + ["valid"] * 40 + ["test"] * 40
    return write_csv(tmp_path / name, ["sequence", "label", "split"], zip(seqs, labels, splits), sep)


def load(cfg, task="sequence", problem="single_label_classification"):
    return load_task_data(cfg, task=task, problem_type=problem)


def test_one_csv_with_a_split_column(tmp_path, windows):
    data = load(FinetuneDataConfig(path=table_with_splits(tmp_path, windows)))
    assert data.label_names == ("at_rich", "gc_rich")
    assert [len(data.splits[s]) for s in ("train", "valid", "test")] == [120, 40, 40]
    seqs, labels = windows
    assert Tokenizer().decode(data.splits["test"].tokens[0]) == seqs[160]
    assert data.label_names[data.splits["test"].labels[0]] == labels[160]
    assert len(data.content_hash) == 64


def test_separate_parquet_and_tsv_files_and_a_carved_valid_split(tmp_path, windows):
    seqs, labels = windows
    pq.write_table(pa.table({"seq": seqs[:150], "y": labels[:150]}), tmp_path / "train.parquet")
    test = write_csv(tmp_path / "test.tsv", ["seq", "y"], zip(seqs[150:], labels[150:]), "\t")
    cfg = FinetuneDataConfig(train=str(tmp_path / "train.parquet"), test=test, sequence_column="seq",
                             label_columns=("y",), valid_fraction=0.2)
    data = load(cfg)
    assert [len(data.splits[s]) for s in ("train", "valid", "test")] == [120, 30, 50]
    again = load(cfg)
    assert data.splits["valid"].ids == again.splits["valid"].ids  # seeded


def test_multi_label_and_regression_tables(tmp_path, windows):
    seqs, _ = windows
    gc = [(s.count("G") + s.count("C")) / len(s) for s in seqs]
    rows = [(s, int(g > 0.47), int("GGG" in s), round(g, 4), sp) for s, g, sp in
            zip(seqs, gc, ["train"] * 120 + ["valid"] * 40 + ["test"] * 40)]
    path = write_csv(tmp_path / "m.csv", ["sequence", "a", "b", "gc", "split"], rows)
    ml = load(FinetuneDataConfig(path=path, label_columns=("a", "b")), problem="multi_label_classification")
    assert ml.label_names == ("a", "b") and ml.splits["train"].labels.shape == (120, 2)
    reg = load(FinetuneDataConfig(path=path, label_columns=("gc",)), problem="regression")
    assert reg.splits["test"].labels[0, 0] == pytest.approx(rows[160][3], abs=1e-4)


def test_genomic_benchmarks_layout(tmp_path, windows):
    seqs, labels = windows
    for i, (s, y) in enumerate(zip(seqs, labels)):
        split = "train" if i < 150 else "test"
        d = tmp_path / "gb" / split / y
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i}.txt").write_text(s)
    data = load(FinetuneDataConfig(format="genomic_benchmarks", path=str(tmp_path / "gb")))
    assert data.label_names == ("at_rich", "gc_rich")
    assert len(data.splits["test"]) == 50 and len(data.splits["train"]) + len(data.splits["valid"]) == 150


@pytest.mark.parametrize("case, pattern", [
    ("missing_column", r"t\.csv: no column 'label'; columns are sequence, y, split; set data.label_columns"),
    ("empty_label", r"t\.csv: row 3: empty label in column 'label'"),
    ("unknown_class", r"t\.csv: row 200: class 'weird' is not among the train classes"),
    ("mixed_types", r"t\.csv: row \d+: mixed label types in column 'label'"),
    ("bad_base", r"t\.csv: row 5: character 'X' at position 7 is not a nucleotide"),
    ("empty_split", r"the valid split is empty"),
    ("bad_split", r"t\.csv: row 1: split 'training' must be one of train, valid, test"),
])
def test_bad_tables_name_the_file_the_row_and_the_fix(tmp_path, windows, case, pattern):
    seqs, labels = list(windows[0]), list(windows[1])
    splits = ["train"] * 120 + ["valid"] * 40 + ["test"] * 40
    header = ["sequence", "label", "split"]
    if case == "missing_column":
        header = ["sequence", "y", "split"]
    elif case == "empty_label":
        labels[2] = ""
    elif case == "unknown_class":
        labels[199] = "weird"
    elif case == "mixed_types":
        labels[10] = 3
    elif case == "bad_base":
        seqs[4] = seqs[4][:7] + "X" + seqs[4][8:]
    elif case == "empty_split":
        splits = ["train"] * 160 + ["test"] * 40
    elif case == "bad_split":
        splits[0] = "training"
    path = write_csv(tmp_path / "t.csv", header, zip(seqs, labels, splits))
    cfg = FinetuneDataConfig(path=path, valid_fraction=0.5) if case != "empty_split" else FinetuneDataConfig(path=path)
    if case == "empty_split":  # no valid rows is fine (carved from train); no test rows is not
        path = write_csv(tmp_path / "t.csv", header, zip(seqs, labels, ["train"] * 160 + ["valid"] * 40))
        pattern = r"the test split is empty"
    with pytest.raises(InputError, match=pattern):
        load(cfg)


def test_too_long_sequences_error_unless_cropped(windows):
    tokens = [Tokenizer().encode(s) for s in windows[0][:3]]
    split = Split(tokens, np.zeros(3, dtype=np.int64), ["t.csv: row 1", "t.csv: row 2", "t.csv: row 3"])
    with pytest.raises(InputError, match=r"t\.csv: row 1: sequence of 200 bases is longer than the model's 150; set data.crop"):
        fit_lengths(split, 150, "none", split_name="train")
    end = fit_lengths(split, 150, "keep_end", split_name="train")
    assert np.array_equal(end.tokens[0], tokens[0][50:])
    center = fit_lengths(split, 150, "keep_center", split_name="train")
    assert np.array_equal(center.tokens[0], tokens[0][25:175])


def write_bed(path, lines):
    path.write_text("".join("\t".join(map(str, line)) + "\n" for line in lines))
    return str(path)


def test_fasta_bed_per_base_labels_over_windows(tmp_path, bundled_genome):
    bed = write_bed(tmp_path / "genes.bed", [("chrI", 100, 250, "CDS", 0, "+"), ("chrII", 5, 20, "CDS", 0, "-"),
                                             ("chrI", 2000, 2100, "CDS", 0, "-")])
    cfg = FinetuneDataConfig(format="fasta_bed", fasta=str(bundled_genome), bed=bed, window=1024,
                             train_chroms=("chrI",), test_chroms=("chrII",), strand_labels=True,
                             background_label="noncoding")
    data = load(cfg, task="token")
    assert data.label_names == ("noncoding", "CDS+", "CDS-")
    everything = data.splits["train"].ids + data.splits["valid"].ids
    assert len(everything) == math.ceil(2961149 / 1024)
    i = everything.index("chrI:0-1024")
    split = data.splits["train"] if i < len(data.splits["train"]) else data.splits["valid"]
    labels = split.labels[split.ids.index("chrI:0-1024")]
    assert labels[99] == 0 and labels[100] == 1 and labels[249] == 1 and labels[250] == 0
    test = data.splits["test"]
    assert test.labels[0][5] == 2 and test.labels[0][4] == 0 and len(test.tokens[-1]) == 1072315 % 1024


@pytest.mark.parametrize("line, pattern", [
    (("chrI", 10, 3000000, "CDS"), r"genes\.bed:1: interval chrI:10-3000000 is outside chrI"),
    (("chrX", 10, 30, "CDS"), r"genes\.bed:1: chromosome 'chrX' is not in the FASTA"),
    (("chrI", "a", 30, "CDS"), r"genes\.bed:1: start and end must be integers"),
])
def test_bad_bed_labels(tmp_path, bundled_genome, line, pattern):
    cfg = FinetuneDataConfig(format="fasta_bed", fasta=str(bundled_genome), bed=write_bed(tmp_path / "genes.bed", [line]),
                             train_chroms=("chrI",), test_chroms=("chrII",))
    with pytest.raises(InputError, match=pattern):
        load(cfg, task="token")


def test_classification_metrics_against_hand_values():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    m = compute_metrics("single_label_classification", y, p)
    assert m["accuracy"] == 0.75
    assert m["auroc"] == 1.0  # every positive scores above every negative
    assert m["mcc"] == pytest.approx(1 / math.sqrt(3))
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    r = compute_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([[2.0], [4.0], [6.5]]))
    assert r["pearson"] == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 6.5])[0, 1])
    assert r["spearman"] == 1.0


def test_kmer_codes_match_a_direct_count():
    seq = "ACGTNACGGT"
    t = Tokenizer().encode(seq)
    for k in (1, 2, 3):
        codes = kmer.kmer_codes(t, k)
        for i in range(len(seq)):
            word = seq[i - k + 1:i + 1] if i >= k - 1 else None
            if word is None or "N" in word:
                assert codes[i] == -1
            else:
                assert codes[i] == int(word.translate(str.maketrans("ACGT", "0123")), 4)
    X = kmer.sequence_features([t], 2).toarray()[0]
    assert X[:4].sum() == pytest.approx(1.0) and X[0] == pytest.approx(2 / 9)  # A: 2 of 9 valid bases


def test_kmer_baseline_learns_a_real_signal(windows):
    seqs, labels = windows
    tokens = [Tokenizer().encode(s) for s in seqs]
    y = (np.asarray(labels) == "gc_rich").astype(np.int64)
    mk = lambda a, b: Split(tokens[a:b], y[a:b], [str(i) for i in range(a, b)])
    task = TaskData("sequence", "single_label_classification", ("at_rich", "gc_rich"), {}, "x")
    out = kmer.run_baseline(task, {"train": mk(0, 120), "valid": mk(120, 160), "test": mk(160, 200)},
                            kmer.BaselineConfig(max_k=3))
    assert out["test"]["accuracy"] > 0.85
    rows = out["test_rows"]  # what the paired comparison with the model reads: every test sequence, in order
    assert rows.labels.tolist() == y[160:200].tolist() and rows.groups.tolist() == list(range(40))
    assert compute_metrics("single_label_classification", rows.labels, rows.scores) == pytest.approx(out["test"])


def test_token_features_count_only_the_left_context_inside_the_example():
    t = Tokenizer().encode("AAAACCCC")
    X = kmer.token_features([t, t], np.array([[1, 5], [0, 1]]), 1, 3).toarray()
    assert X[0, :4].tolist() == pytest.approx([1 / 3, 2 / 3, 0, 0])  # bases 3..5 = A C C
    assert X[1, :4].tolist() == pytest.approx([1.0, 0, 0, 0])  # only bases 0..1 exist


def test_two_sided_token_features_put_the_bases_after_a_position_in_the_right_block():
    """GATTAC lies 11 bases right of position 30: with a 20-base context it reaches the right block
    (in forward k-mer order, once per 6-mer window of the 20 bases starting at 30) and not the left."""
    seq = "A" * 30 + "C" + "A" * 10 + "GATTAC" + "A" * 20
    t = Tokenizer().encode(seq)
    picks = np.array([[0, 30], [0, 60]])
    X = kmer.two_sided_token_features([t], picks, 6, 20).toarray()
    n = X.shape[1] // 2
    gattac = kmer._offsets(6)[5] + int("GATTAC".translate(str.maketrans("ACGT", "0123")), 4)
    cattag = kmer._offsets(6)[5] + int("CATTAG".translate(str.maketrans("ACGT", "0123")), 4)  # read backwards
    assert n == 5460 and X[0, n + gattac] == pytest.approx(1 / 20) and X[0, gattac] == 0
    assert X[0, n + cattag] == 0
    assert X[1, gattac] == pytest.approx(1 / 20) and X[1, n + gattac] == 0  # now on the left only
    assert X[1, n:n + 4].tolist() == pytest.approx([1, 0, 0, 0])  # right of 60: bases 60..66, all A
    # The left block is the forward features, unchanged.
    assert np.array_equal(X[:, :n], kmer.token_features([t], picks, 6, 20).toarray())


def test_two_sided_baseline_only_for_both_strands_token_tasks(windows):
    """A per-base label that the bases AFTER a position decide (are the 12 bases starting there
    GC-rich?): left k-mers barely see it, the two-sided baseline does; forward tasks keep the
    one-sided features."""
    seqs, _ = windows
    tokens = [Tokenizer().encode(s) for s in seqs]
    gc = [np.isin(np.array(list(s)), ["G", "C"]).astype(float) for s in seqs]
    labels = [(np.convolve(g, np.ones(12))[11:] > 6).astype(np.int64) for g in gc]  # GC of bases i..i+11
    mk = lambda a, b: Split(tokens[a:b], labels[a:b], [str(i) for i in range(a, b)])
    task = TaskData("token", "single_label_classification", ("at", "gc"), {}, "x")
    splits = {"train": mk(0, 120), "valid": mk(120, 160), "test": mk(160, 200)}
    cfg = kmer.BaselineConfig(max_k=2, context=12, max_train_positions=4000, max_eval_positions=2000)
    forward = kmer.run_baseline(task, splits, cfg)
    both = kmer.run_baseline(task, splits, cfg, strands="both")
    assert forward["train"]["features"] == 20 and both["train"]["features"] == 40
    assert forward["test"]["mcc"] < 0.3 and both["test"]["mcc"] > 0.8
    # The test rows are the bases evaluated_picks names (the model's test rows pair with them).
    picks = kmer.evaluated_picks(splits["test"], cfg, "test")
    rows = both["test_rows"]
    assert len(picks) == 2000 and rows.groups.tolist() == picks[:, 0].tolist()
    assert rows.labels.tolist() == kmer.position_labels(splits["test"], picks).tolist()
    assert compute_metrics("single_label_classification", rows.labels, rows.scores) == pytest.approx(both["test"])


def test_balanced_class_weights():
    split = Split([], np.array([0, 0, 0, 1]), [])
    assert balanced_class_weights(split, 2).tolist() == pytest.approx([4 / 6, 2.0])
