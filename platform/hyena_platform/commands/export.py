"""`hyena export MODEL OUT --format ours|multimolecule`: a model for use outside the platform.

MODEL is a checkpoint directory or a registered model (models:/NAME@ALIAS, models:/NAME/VERSION).
`ours` writes hyena-platform's format (config.json + model.safetensors, what
`hyena.from_pretrained` reads); `multimolecule` writes a MultiMolecule HyenaDnaForCausalLM with
its DnaTokenizer files, for Hugging Face users (`import multimolecule`, then
`transformers.pipeline("text-generation", model=OUT)`). A registered version's model card
(README.md) comes along. OUT is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from hyena_platform.errors import InputError

FORMATS = ("ours", "multimolecule")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint directory, models:/NAME@ALIAS or models:/NAME/VERSION")
    parser.add_argument("out", help="output directory (must not exist unless --overwrite)")
    parser.add_argument("--format", choices=FORMATS, default="ours", help="ours (default) or multimolecule")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store for models:/ URIs (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT (never the model itself)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser().resolve()
    _check_destination(args.model, out, args.overwrite)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=_parent(out)) as tmp:
        model, card, legacy = _load(args.model, Path(tmp) / "download", args.tracking_uri)
        staged = Path(tmp) / "export"
        if args.format == "ours":
            model.save_pretrained(staged)
        else:
            from hyena import export_multimolecule

            export_multimolecule(model, staged)
        if card is not None:
            shutil.copyfile(card, staged / "README.md")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staged, out)
    print(f"exported {args.model} ({args.format} format) to {out}")
    if legacy:
        print(f"note: {args.model} was registered before registered versions became MLflow Models; "
              f"`hyena upgrade-model {args.model}` registers it again as one (for mlflow models serve)")
    return 0


def _parent(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.parent


def _check_destination(model: str, out: Path, overwrite: bool) -> None:
    if not model.startswith("models:/"):
        source = Path(model).expanduser().resolve()
        if out == source or source.is_relative_to(out):
            raise InputError(f"{out}: the output directory would replace the model it exports; choose another OUT")
    if out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
        raise InputError(f"{out} already exists; choose a new output directory, or pass --overwrite to replace it")


def _load(model: str, download: Path, tracking_uri: str | None):
    """(model, README.md path or None, True for a version registered before MLflow Models)."""
    from hyena import CheckpointError
    from hyena.pyfunc import load_checkpoint  # a fine-tuned task model keeps its head
    from hyena_platform import tracking

    if not model.startswith("models:/"):
        try:
            return load_checkpoint(model), None, False
        except CheckpointError as err:
            raise InputError(str(err)) from None
    root = tracking.download_version(model, download, tracking_uri=tracking_uri)
    directory = tracking.checkpoint_dir(root, model)
    try:
        loaded = load_checkpoint(directory)
    except CheckpointError as err:
        raise InputError(f"{model}: the registered checkpoint cannot be read: {err}") from None
    card = root / "README.md"
    return loaded, card if card.is_file() else None, directory == root
