"""Genome data: FASTA -> token chunks -> Parquet shards -> training windows.

Modules (import what you use; only `pipeline` and the Ray half of `windows` import Ray, and only
when called):

- `config`: `DataConfig`, the `data:` section of every job YAML.
- `genome`: the layout (records, splits, BED, chunk plan) and its checks; no Ray.
- `fasta`: FASTA formats, indexes, fast range reads, tokenisation into Arrow chunks; no Ray.
- `pipeline`: `load_chunks`, `write_shards`, `read_manifest` (Ray Data).
- `windows`: `cut_windows` (numpy) and `stage_windows`, `equalize_batches` (Ray Data).
"""

from hyena_platform.data.config import DataConfig

__all__ = ["DataConfig"]
