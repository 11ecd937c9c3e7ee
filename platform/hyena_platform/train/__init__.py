"""Pretraining on Ray Train: job config, warm-up schedule, optimizer, k-mer baselines, the
per-worker loop and the TorchTrainer launch.

Importing this package imports nothing heavy; `hyena_platform.train.launch.run_pretrain` is the
entry point (it imports Ray and MLflow when called).
"""
