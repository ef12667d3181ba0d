"""SIGINT and SIGTERM end a run cleanly: no output committed, temporary files removed.

:func:`handled` (the command line's ``main`` runs every command inside it) turns both signals
into :class:`Interrupted`, a :class:`KeyboardInterrupt` raised where the program is, so the
writers' ``except``/``finally`` blocks remove their temporary paths. A signal that arrives while
Python runs a finaliser (h5py closes objects from weakref callbacks) can have its exception
swallowed there; the signal is also recorded, and :func:`raise_if_received`, called by every
writer just before it renames its output into place, raises it again: an interrupted run never
commits an output, whatever was running when the signal came.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

#: ``{"signum": ...}``: the signal received since :func:`handled` began (empty: none).
_received: dict[str, int] = {}


class Interrupted(KeyboardInterrupt):
    """The run was interrupted by ``signum`` (SIGINT or SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """``128 + signum``, the shell's convention: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


def _on_signal(signum: int, frame: object) -> None:
    _received["signum"] = signum
    raise Interrupted(signum)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Within the block SIGINT and SIGTERM raise :class:`Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    previous = {
        signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    hook = sys.unraisablehook

    def quiet(unraisable: Any) -> None:  # the interrupt raised inside a finaliser: recorded
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def raise_if_received() -> None:
    """Raise :class:`Interrupted` if a signal came (even if its exception was swallowed)."""
    if _received:
        raise Interrupted(_received["signum"])
