"""A test that interrupts a child process with SIGINT must start it as a terminal starts a
foreground job: with SIGINT at its default action. A shell starts background jobs (`cmd &`, some
CI runners) with SIGINT ignored; the child inherits that through exec, Python then installs no
KeyboardInterrupt handler, and the SIGINT is lost: the test would measure how pytest was launched,
not the program."""

from __future__ import annotations

import signal


def foreground_sigint() -> None:
    """subprocess.Popen preexec_fn: SIGINT back to its default action in the child, before exec."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
