"""The official HyenaDNA character tokenizer, vectorised.

Official ids (HyenaDNA's 12-token vocabulary, padded to 16 embedding rows in the model):
``[CLS]=0 [SEP]=1 [BOS]=2 [MASK]=3 [PAD]=4 [RESERVED]=5 [UNK]=6 A=7 C=8 G=9 T=10 N=11``.

Differences from the official tokenizer, chosen for genomes: soft-masked lowercase bases map to
the same ids as uppercase (the mask can be returned separately), IUPAC ambiguity codes map to N,
and any other character is an error naming its position instead of a silent [UNK].
Encoding is a single 256-entry lookup table applied with numpy: no per-character Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence, Union

import numpy as np

CLS, SEP, BOS, MASK, PAD, RESERVED, UNK = range(7)
A, C, G, T, N = 7, 8, 9, 10, 11
VOCAB_SIZE = 12
SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]")
BASES = "ACGTN"
ID_TO_TOKEN: tuple[str, ...] = SPECIAL_TOKENS + tuple(BASES)

# IUPAC nucleotide ambiguity codes (two or more possible bases); all become N.
IUPAC_AMBIGUOUS = "RYSWKMBDHVN"

_INVALID = 255  # marker in the lookup table: not a nucleotide character


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    ids = np.full(256, _INVALID, dtype=np.uint8)
    soft = np.zeros(256, dtype=bool)
    for base, token_id in zip("ACGT", (A, C, G, T)):
        ids[ord(base)] = token_id
        ids[ord(base.lower())] = token_id
        soft[ord(base.lower())] = True
    for code in IUPAC_AMBIGUOUS:
        ids[ord(code)] = N
        ids[ord(code.lower())] = N
        soft[ord(code.lower())] = True
    # U is RNA's T: accepted so RNA-derived references do not fail.
    ids[ord("U")] = T
    ids[ord("u")] = T
    soft[ord("u")] = True
    return ids, soft


BYTE_TO_ID, BYTE_IS_SOFT_MASKED = _build_tables()
COMPLEMENT = np.arange(256, dtype=np.uint8)  # token id -> its complement's (others stay)
COMPLEMENT[[A, C, G, T]] = [T, G, C, A]

SequenceLike = Union[str, bytes, bytearray, memoryview, np.ndarray]


class TokenizerError(ValueError):
    """A sequence holds a character that is not a nucleotide or IUPAC code."""


def as_bytes_array(sequence: SequenceLike) -> np.ndarray:
    """View `sequence` as a uint8 array of ASCII codes without copying where possible."""
    if isinstance(sequence, np.ndarray):
        if sequence.dtype != np.uint8:
            raise TypeError(f"expected a uint8 array of ASCII codes, got dtype {sequence.dtype}")
        return sequence
    if isinstance(sequence, str):
        try:
            sequence = sequence.encode("ascii")
        except UnicodeEncodeError as err:
            raise TokenizerError(
                f"non-ASCII character {sequence[err.start]!r} at position {err.start}: "
                "a DNA sequence holds only A, C, G, T and IUPAC codes"
            ) from None
    return np.frombuffer(sequence, dtype=np.uint8)


def encode_bytes(codes: np.ndarray, *, where: str = "sequence", offset: int = 0) -> np.ndarray:
    """Map ASCII codes to official token ids (uint8). Raises naming the first bad position.

    `where` and `offset` only shape the error message (a FASTA record and its start coordinate).
    """
    ids = BYTE_TO_ID[codes]
    bad = np.flatnonzero(ids == _INVALID)
    if bad.size:
        pos = int(bad[0])
        char = chr(int(codes[pos]))
        raise TokenizerError(
            f"{where}: character {char!r} at position {offset + pos} is not a nucleotide "
            f"(valid: A C G T U, IUPAC codes {IUPAC_AMBIGUOUS}, upper or lower case); "
            f"{bad.size} invalid character(s) in total"
        )
    return ids


def soft_mask(codes: np.ndarray) -> np.ndarray:
    """Boolean mask of soft-masked (lowercase) positions."""
    return BYTE_IS_SOFT_MASKED[codes]


def reverse_complement_ids(ids: np.ndarray) -> np.ndarray:
    """Reverse complement of official token ids along the last axis (N and specials unchanged)."""
    return COMPLEMENT[ids][..., ::-1]


@dataclass(frozen=True)
class Tokenizer:
    """Official HyenaDNA tokenizer.

    `add_special_tokens` follows the official pretraining layout: a sequence is followed by
    [SEP]; official padding is on the left.
    """

    padding_side: str = "left"

    vocab_size: int = VOCAB_SIZE
    pad_token_id: int = PAD
    sep_token_id: int = SEP
    cls_token_id: int = CLS
    unk_token_id: int = UNK
    mask_token_id: int = MASK

    def __post_init__(self) -> None:
        if self.padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")

    @property
    def vocab(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(ID_TO_TOKEN)}

    def encode(self, sequence: SequenceLike, *, add_special_tokens: bool = False) -> np.ndarray:
        """Encode one sequence (str, bytes or uint8 ASCII array) to a uint8 array of ids."""
        ids = encode_bytes(as_bytes_array(sequence))
        if add_special_tokens:
            ids = np.concatenate([ids, np.array([SEP], dtype=np.uint8)])
        return ids

    def decode(self, ids: Iterable[int] | np.ndarray, *, skip_special_tokens: bool = False) -> str:
        """Decode ids to a string; special tokens render as their names unless skipped."""
        arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= VOCAB_SIZE):
            raise TokenizerError(f"token id out of range 0..{VOCAB_SIZE - 1}: {arr.min()}..{arr.max()}")
        if skip_special_tokens:
            arr = arr[arr >= A]
        if arr.size and arr.min() >= A:  # fast path: bases only
            table = np.frombuffer(b"\0" * A + BASES.encode(), dtype=np.uint8)
            return table[arr].tobytes().decode("ascii")
        return "".join(ID_TO_TOKEN[i] for i in arr.tolist())

    def batch_encode(
        self,
        sequences: Sequence[SequenceLike],
        *,
        add_special_tokens: bool = False,
        max_length: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encode and pad a batch. Returns (ids int64 (B, L), attention_mask bool (B, L)).

        Sequences longer than `max_length` raise: silently truncating a genome is a bug magnet.
        """
        encoded = [self.encode(s, add_special_tokens=add_special_tokens) for s in sequences]
        longest = max((len(e) for e in encoded), default=0)
        width = longest if max_length is None else max_length
        if longest > width:
            raise TokenizerError(f"a sequence has {longest} tokens, more than max_length={width}")
        ids = np.full((len(encoded), width), PAD, dtype=np.int64)
        mask = np.zeros((len(encoded), width), dtype=bool)
        for row, e in enumerate(encoded):
            if self.padding_side == "left":
                ids[row, width - len(e):] = e
                mask[row, width - len(e):] = True
            else:
                ids[row, : len(e)] = e
                mask[row, : len(e)] = True
        return ids, mask
