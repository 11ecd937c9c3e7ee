"""Fine-tuning HyenaDNA on labelled tasks: data, metrics, k-mer baseline, Ray Train job, predictions."""
