"""The embedding job (`hyena embed JOB.yaml`): sequence or per-base embeddings on Ray Data.

config (EmbedJob) -> inputs (FASTA records, BED regions, or a table -> checked items and
chunks) -> pipeline (the scoring job's actor pool, writers, manifest and MLflow run).
"""
