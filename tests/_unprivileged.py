"""Run a test's subprocess as an ordinary user would, even when the tests run as root.

Root writes into any directory whatever its mode (CAP_DAC_OVERRIDE), so a `chmod 0o555`
"read-only" directory is not read-only to a test running as root, and a test of the read-only
path would pass without exercising it. `without_override` is a `preexec_fn` that drops
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the capability bounding set before the exec: the
new program (and every process it starts) then meets the permission bits like any user, root
included. Dropping capabilities needs no privilege; for a non-root user it changes nothing.
"""

from __future__ import annotations

import ctypes
import os

PR_CAPBSET_DROP = 24  # <linux/prctl.h>
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2  # <linux/capability.h>


def without_override() -> None:
    """preexec_fn: drop the capabilities that let root ignore file permission bits."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")
