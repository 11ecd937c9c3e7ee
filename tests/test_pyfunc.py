"""hyena.pyfunc without MLflow: output dispatch, parameter checks and bad sequences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hyena import HyenaConfig, HyenaDNAForCausalLM
from hyena.pyfunc import HyenaPyfunc, PredictError, supported_outputs


@pytest.fixture(scope="module")
def served() -> HyenaPyfunc:
    torch.manual_seed(0)
    return HyenaPyfunc(HyenaDNAForCausalLM(HyenaConfig(d_model=16, n_layer=1, l_max=34)))


def test_rows_come_back_in_input_order_whatever_the_batching(served):
    seqs = ["ACGTACGTAC", "GGA", "TTTTACGTAC", "ACGTACGTAC", "C"]
    together = served.predict({"sequence": seqs}, params={"batch_size": 2})
    for i, seq in enumerate(seqs):
        alone = served.predict([seq])
        np.testing.assert_allclose(together["log_likelihood"][i], alone["log_likelihood"][0], atol=1e-6, rtol=0)
    assert list(together["bases"]) == [10, 3, 10, 10, 1]


@pytest.mark.parametrize("params, message", [
    ({"output": "class_probabilities"}, r"output='class_probabilities' is not available for this model; choose one of log_likelihood, embedding"),
    ({"pooling": "max"}, r"pooling='max'; choose one of mean, last"),
    ({"temperature": 1.0}, r"unknown parameter\(s\) temperature; valid: output, pooling, batch_size"),
    ({"batch_size": 0}, r"batch_size=0 must be >= 1"),
])
def test_bad_params_name_the_valid_choices(served, params, message):
    with pytest.raises(PredictError, match=message):
        served.predict(["ACGT"], params=params)


@pytest.mark.parametrize("model_input, message", [
    ({"sequence": ["ACGT", "ACXT"]}, r"row 1: .*'X' at position 2"),
    ({"sequence": ["ACGT", ""]}, r"row 1: 'sequence' must be a non-empty DNA string"),
    ({"seq": ["ACGT"]}, r"needs a 'sequence' column; it has \['seq'\]"),
    ({"sequence": ["A" * 35]}, r"row 0: 35 bases is longer than this model's l_max 34"),
])
def test_bad_sequences_name_the_row(served, model_input, message):
    with pytest.raises(PredictError, match=message):
        served.predict(model_input)


@pytest.mark.parametrize("task, problem_type", [
    ("sequence", "single_label_classification"), ("sequence", "multi_label_classification"),
    ("token", "single_label_classification"),
])
def test_classification_heads_answer_class_probabilities(task, problem_type, tmp_path):
    from hyena.heads import HeadConfig, HyenaDNAForSequencePrediction, HyenaDNAForTokenPrediction
    from hyena.pyfunc import load_checkpoint

    torch.manual_seed(1)
    cls = HyenaDNAForSequencePrediction if task == "sequence" else HyenaDNAForTokenPrediction
    head = cls(HyenaConfig(d_model=16, n_layer=1, l_max=34),
               HeadConfig(num_labels=3, problem_type=problem_type, label_names=("coding", "intergenic", "rna")))
    served = HyenaPyfunc(load_checkpoint(head.save_pretrained(tmp_path / "head")))  # the registered path
    assert served.outputs == ("class_probabilities", "embedding")
    out = served.predict({"sequence": ["ACGTAC", "GGTTAA"]})
    with torch.no_grad():
        logits = head.eval()(torch.tensor([[7, 8, 9, 10, 7, 8]])).logits[0]
    expected = torch.softmax(logits, -1) if problem_type.startswith("single") else torch.sigmoid(logits)
    np.testing.assert_allclose(np.asarray(out["probabilities"][0]), expected.numpy(), atol=1e-6)
    names = np.array(head.head_config.label_names)
    assert np.all(np.asarray(out["label"][0]) == names[expected.argmax(-1).numpy()])
    if task == "token":
        assert np.asarray(out["probabilities"][1]).shape == (6, 3)


def test_regression_heads_answer_predictions(tmp_path):
    from hyena.heads import HeadConfig, HyenaDNAForSequencePrediction

    torch.manual_seed(2)
    head = HyenaDNAForSequencePrediction(HyenaConfig(d_model=16, n_layer=1, l_max=34),
                                         HeadConfig(num_labels=2, problem_type="regression")).eval()
    served = HyenaPyfunc(head)
    assert served.outputs == ("prediction", "embedding")
    with torch.no_grad():
        want = head(torch.tensor([[7, 8, 9]])).logits[0].numpy()
    np.testing.assert_allclose(served.predict(["ACG"])["prediction"][0], want, atol=1e-6)
