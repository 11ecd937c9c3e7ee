"""Typed errors a user can cause. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class HyenaPlatformError(Exception):
    """Base class: an error whose message is meant for the user, without a traceback."""

    exit_code = 2


class ConfigError(HyenaPlatformError):
    """A job YAML or a --set override is invalid (unknown key, wrong type, inconsistent values)."""


class InputError(HyenaPlatformError):
    """An input file (FASTA, BED, checkpoint, shard directory) is missing or malformed."""
