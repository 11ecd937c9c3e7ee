"""`hyena upgrade-model models:/NAME/VERSION`: re-register a version from before MLflow Models.

Versions registered before registered versions became MLflow Models hold only the checkpoint
files, so `mlflow.pyfunc.load_model` and `mlflow models serve` cannot use them (the platform's own
loaders still can). This registers the same weights again as a new version that is an MLflow
Model (same run, tags and description); the aliases of the old version move to the new one.
The old version is kept.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="models:/NAME/VERSION or models:/NAME@ALIAS of the version to upgrade")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")


def run(args: argparse.Namespace) -> int:
    from hyena_platform import tracking

    info = tracking.model_version(args.model, tracking_uri=args.tracking_uri)
    version = tracking.upgrade_model_version(args.model, tracking_uri=args.tracking_uri)
    moved = f"; aliases {', '.join('@' + a for a in info.aliases)} now point at it" if info.aliases else ""
    print(f"registered models:/{info.name}/{version}, an MLflow Model of version {info.version}{moved}")
    return 0
