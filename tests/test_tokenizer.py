import numpy as np
import pytest

from hyena import Tokenizer, TokenizerError
from hyena.tokenizer import A, C, G, N, PAD, SEP, T, reverse_complement_ids, soft_mask, as_bytes_array


def test_official_ids():
    tok = Tokenizer()
    assert tok.vocab == {
        "[CLS]": 0, "[SEP]": 1, "[BOS]": 2, "[MASK]": 3, "[PAD]": 4, "[RESERVED]": 5, "[UNK]": 6,
        "A": 7, "C": 8, "G": 9, "T": 10, "N": 11,
    }
    assert tok.encode("ACGTN").tolist() == [A, C, G, T, N] == [7, 8, 9, 10, 11]


def test_str_bytes_and_uint8_inputs_agree():
    tok = Tokenizer()
    seq = "ACGTNacgtnRYKM"
    expected = tok.encode(seq)
    assert np.array_equal(tok.encode(seq.encode()), expected)
    assert np.array_equal(tok.encode(np.frombuffer(seq.encode(), dtype=np.uint8)), expected)
    assert expected.dtype == np.uint8


def test_soft_mask_maps_to_same_base_and_is_reported():
    tok = Tokenizer()
    assert np.array_equal(tok.encode("acgt"), tok.encode("ACGT"))
    assert soft_mask(as_bytes_array("aCgT")).tolist() == [True, False, True, False]


def test_iupac_codes_become_n():
    tok = Tokenizer()
    assert set(tok.encode("RYSWKMBDHVNryswkmbdhvn").tolist()) == {N}


def test_invalid_character_names_its_position():
    with pytest.raises(TokenizerError, match=r"'X' at position 4"):
        Tokenizer().encode("ACGTXACGT")
    with pytest.raises(TokenizerError, match="position 2"):
        Tokenizer().encode("AC-T")
    with pytest.raises(TokenizerError, match="non-ASCII"):
        Tokenizer().encode("ACGé")


def test_decode_round_trip_and_specials():
    tok = Tokenizer()
    assert tok.decode(tok.encode("ACGTN")) == "ACGTN"
    assert tok.decode([0, 7, 1]) == "[CLS]A[SEP]"
    assert tok.decode([0, 7, 1], skip_special_tokens=True) == "A"


def test_batch_encode_pads_left_by_default_with_sep():
    ids, mask = Tokenizer().batch_encode(["AC", "ACGT"], add_special_tokens=True)
    assert ids.tolist() == [[PAD, PAD, A, C, SEP], [A, C, G, T, SEP]]
    assert mask.tolist() == [[False, False, True, True, True], [True] * 5]
    ids, _ = Tokenizer(padding_side="right").batch_encode(["A", "AC"])
    assert ids.tolist() == [[A, PAD], [A, C]]
    with pytest.raises(TokenizerError, match="max_length"):
        Tokenizer().batch_encode(["ACGT"], max_length=3)


def test_reverse_complement():
    tok = Tokenizer()
    assert tok.decode(reverse_complement_ids(tok.encode("AACGTN"))) == "NACGTT"
