"""`hyena info`: versions, the released model variants and the bundled genome."""

from __future__ import annotations

import argparse
import platform
from importlib import metadata

from hyena.config import OFFICIAL_PARAMETER_COUNTS, VARIANTS
from hyena_platform.genome_assets import BUNDLED_GENOME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def run(args: argparse.Namespace) -> int:
    del args
    versions = []
    for dist in ("hyena-platform", "torch", "ray", "mlflow", "pyarrow", "pyfaidx"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    print(f"Python {platform.python_version()}; " + ", ".join(versions))
    print("Released HyenaDNA variants:")
    for name, fields in VARIANTS.items():
        print(f"  {name:14s} d_model={fields['d_model']:<4d} layers={fields['n_layer']:<2d} "
              f"l_max={fields['l_max']:<8d} parameters={OFFICIAL_PARAMETER_COUNTS[name]:,}")
    print(f"Bundled genome: {BUNDLED_GENOME}")
    return 0
