"""Functions that misbehave on purpose, for the reader sandbox's tests (run in its worker)."""

from __future__ import annotations


def spin(label: str) -> str:
    """Burn CPU forever unless ``label`` is "ok"."""
    while label != "ok":
        pass
    return label


def hog(megabytes: int) -> int:
    """Hold ``megabytes`` of memory."""
    block = bytearray(megabytes * 1024 * 1024)
    return len(block)


def crash(label: str) -> str:
    """End the process the hard way unless ``label`` is "ok": with the signal it names
    (SIGKILL stands for the out-of-memory killer), SIGSEGV otherwise."""
    if label != "ok":
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL if label == "SIGKILL" else signal.SIGSEGV)
    return label


def sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds
