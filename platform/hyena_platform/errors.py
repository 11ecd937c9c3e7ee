"""Typed errors a user can cause. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence


class HyenaPlatformError(Exception):
    """Base class: an error whose message is meant for the user, without a traceback."""

    exit_code = 2


class ConfigError(HyenaPlatformError):
    """A job YAML or a --set override is invalid (unknown key, wrong type, inconsistent values)."""


class InputError(HyenaPlatformError):
    """An input file (FASTA, BED, checkpoint, shard directory) is missing or malformed."""


def few(names: Sequence[str], limit: int = 8) -> str:
    """The first `limit` of `names` for a one-line message, with how many more there are."""
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def find_user_error(err: BaseException) -> HyenaPlatformError | None:
    """The user error of ours that `err` is or wraps, if any.

    Ray re-raises an exception from a task or actor as a RayTaskError that subclasses the
    original's type and keeps the original in ``.cause``; Ray Data chains it further.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        cause = getattr(e, "cause", None)  # RayTaskError keeps the original exception here
        if isinstance(cause, HyenaPlatformError):
            return cause
        if isinstance(e, HyenaPlatformError) and type(e).__module__.startswith("hyena_platform"):
            return e
        todo.extend([cause if isinstance(cause, BaseException) else None, e.__cause__, e.__context__])
    return None


@contextlib.contextmanager
def user_errors_from_ray() -> Iterator[None]:
    """Around a Ray action: a user error raised inside a task comes back as itself, one line
    (Ray may append its stack and retry advice on later lines)."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - re-raised unchanged unless it wraps a user error
        user = find_user_error(err)
        if user is not None:
            raise type(user)(str(user).split("\n")[0]) from None
        raise
