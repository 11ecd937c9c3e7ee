"""hyena-platform: pretrain, score and register HyenaDNA models on Ray, tracked in MLflow.

Importing this package does no work: Ray, MLflow and pyarrow are imported by the modules that
use them, when they are used.
"""

__version__ = "0.1.0"
