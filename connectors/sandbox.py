"""Reading untrusted objects under a budget: worker processes with hard limits.

Reading one object from a server (parsing, time-zone resolution, mapping) must cost at
most a bounded amount of CPU and memory (failure mode 24), whatever the object holds. A
thread cannot give that guarantee: Python cannot interrupt a thread that loops inside a
library (dateutil walking a ``FREQ=SECONDLY`` time-zone rule from 1601) or sits in C
code. A process can be ended, so untrusted objects are read in a worker process:

* Before each item the worker sets its soft ``RLIMIT_CPU`` to the CPU it has used so far
  plus :data:`CPU_BUDGET` seconds (rounded up to the next whole second, the limit's
  unit), so the kernel ends it with ``SIGXCPU`` when one item overruns. The hard limit is
  left alone, so the soft one can be raised again for the next item without privileges.
* ``RLIMIT_AS`` caps the worker's memory at :data:`MEMORY_LIMIT`; an item that needs
  more raises ``MemoryError`` in the worker (or gets it killed).
* The parent waits for each result at most :data:`WALL_LIMIT` seconds of wall time, for a
  worker that is stuck without spending CPU, and then kills it.

An item that overruns gets an :class:`Overrun` with the reason instead of a result; the
worker is replaced and the remaining items go on in the new one. Only functions named in
:data:`ALLOWED` can be called, by name. Workers are kept between calls (starting one costs
a Python start-up and the imports, about 0.3 s) and one worker serves one call at a time,
so threads that read at once each get their own.
"""

from __future__ import annotations

import atexit
import importlib
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import IO, Any, cast

from syncd.errors import Transient

#: Seconds of CPU one item may take (failure mode 24). Enforced in whole seconds, so an
#: item is stopped after between CPU_BUDGET and CPU_BUDGET + 1 seconds.
CPU_BUDGET = 2
#: Bytes of address space a worker may map. A worker starts at about 60 MB resident.
MEMORY_LIMIT = 768 * 1024 * 1024
#: Seconds of wall time the parent waits for one item before it kills the worker.
WALL_LIMIT = 30.0
#: Seconds a new worker may take to start (a Python start-up and the imports) and say so.
START_LIMIT = 30.0
#: Items one worker reads before it is replaced, so that what libraries keep per object
#: (icalendar caches every VTIMEZONE it parses, by TZID) stays bounded.
ITEMS_PER_WORKER = 5000

#: The functions a worker may run, by the name callers use.
ALLOWED: dict[str, str] = {
    "ical.read_event": "connectors.ical:read_event",
    "ical.update_calendar": "connectors.ical:update_calendar",
    "ical.read_instances": "connectors.ical:read_instances",
}

_HEADER = struct.Struct("!I")
_TIMED_OUT = object()
_DIED = object()
_READY = "ready"  # a worker's first message: it started and imported what it runs


@dataclass(frozen=True)
class Overrun:
    """An item that could not be read within its budget; ``reason`` is for the admin."""

    reason: str


@dataclass(frozen=True)
class Usage:
    """What the worker spent on one item (for the benchmark): CPU seconds, peak RSS bytes."""

    cpu_seconds: float
    peak_rss: int


class SandboxUnavailable(Transient):
    """A worker could not be started, or stopped before it said it was ready: no item is
    to blame, so none is set aside; the account's cycle fails and is retried
    (``reason``)."""


# --- the parent's side --------------------------------------------------------------------


class _Worker:
    """One worker process and its pipes."""

    def __init__(self) -> None:
        # Isolated mode (-I): no current directory or environment on the path, so the
        # worker imports this very checkout of syncd, named by its root.
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                 "from connectors.sandbox import worker_main; worker_main()", root],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                # Its own session: a Ctrl-C meant for the daemon must not read as an
                # item's failure. It ends when its stdin closes, with the daemon.
                close_fds=True, start_new_session=True,
            )
        except OSError as exc:
            raise SandboxUnavailable(reason=f"cannot start a reader process: {exc}") from None
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout
        self._buffer = b""
        self.served = 0
        self.ready = False

    def send(self, message: object) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.stdin.write(_HEADER.pack(len(data)) + data)
        self.stdin.flush()

    def receive(self, deadline: float) -> Any:
        """The next message; :data:`_TIMED_OUT` when ``deadline`` passed, :data:`_DIED` when
        the worker closed its end (it died)."""
        fd = self.stdout.fileno()
        while True:
            if len(self._buffer) >= _HEADER.size:
                (size,) = _HEADER.unpack_from(self._buffer)
                if len(self._buffer) >= _HEADER.size + size:
                    frame = self._buffer[_HEADER.size:_HEADER.size + size]
                    self._buffer = self._buffer[_HEADER.size + size:]
                    return pickle.loads(frame)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return _TIMED_OUT
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return _DIED
            self._buffer += chunk

    def wait_ready(self) -> None:
        """Wait for the worker's first message, which says it started.

        Raises:
            SandboxUnavailable: it ended or stayed silent instead (it is killed).
        """
        message = self.receive(time.monotonic() + START_LIMIT)
        if message == _READY:
            self.ready = True
            return
        status = self.kill()
        why = (f"it did not answer within {START_LIMIT:g} s" if message is _TIMED_OUT
               else f"exit status {status}" if status is not None and status >= 0
               else _death_reason(status))
        raise SandboxUnavailable(reason=f"a reader process did not start ({why})")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> int | None:
        """End the worker; its exit status (negative: the signal that ended it)."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            return self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None
        finally:
            for pipe in (self.stdin, self.stdout):
                with suppress(OSError):
                    pipe.close()


def _death_reason(status: int | None) -> str:
    if status == -signal.SIGXCPU:
        return f"reading it took more than {CPU_BUDGET} s of CPU"
    if status == -signal.SIGKILL:  # the hard CPU limit is never set: someone else killed it
        return "the reader was killed (SIGKILL: the system may be out of memory)"
    if status is None:
        return "the reader did not stop"
    if status < 0:
        return f"the reader crashed ({signal.Signals(-status).name})"
    return f"the reader stopped (exit status {status})"


def _replace(holder: list[_Worker]) -> None:
    """End the held worker (if it still runs) and hold a new one in its place."""
    holder[0].kill()
    holder[0] = _Worker()


class ReaderPool:
    """Idle workers, handed to one call at a time."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()

    @contextmanager
    def _borrow(self) -> Iterator[list[_Worker]]:
        """A one-element list holding a worker; a caller that replaces it swaps the element."""
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        holder = [worker or _Worker()]
        try:
            yield holder
        finally:
            if holder[0].served >= ITEMS_PER_WORKER:
                holder[0].kill()
            elif holder[0].alive():
                with self._lock:
                    self._idle.append(holder[0])

    def map(self, function: str, items: Sequence[tuple[Any, ...]], *,
            wall_limit: float = WALL_LIMIT, **common: Any) -> list[Any]:
        """``ALLOWED[function](*args, **common)`` for each args tuple, each under the budget.

        Returns one entry per item, in order: the function's result, or an :class:`Overrun`
        when the item used up its CPU, memory or wall time, or raised.
        """
        return [result for result, _usage in self.map_with_usage(
            function, items, wall_limit=wall_limit, **common)]

    def map_with_usage(self, function: str, items: Sequence[tuple[Any, ...]], *,
                       wall_limit: float = WALL_LIMIT, **common: Any
                       ) -> list[tuple[Any, Usage | None]]:
        """Like :meth:`map`, with what each item cost (None for an item that was stopped)."""
        if function not in ALLOWED:
            raise ValueError(f"{function} is not a sandboxed function")
        results: list[tuple[Any, Usage | None]] = []
        with self._borrow() as holder:
            while len(results) < len(items):
                worker = holder[0]
                start = len(results)
                if not worker.ready:
                    # A worker that cannot start is no item's fault: without this, every
                    # item would be set aside as the one that "stopped the reader".
                    worker.wait_ready()
                try:
                    worker.send((ALLOWED[function], list(items[start:]), common))
                except OSError:  # died while idle: replace it and send again
                    _replace(holder)
                    continue
                while len(results) < len(items):
                    message = worker.receive(time.monotonic() + wall_limit)
                    if message is _TIMED_OUT or message is _DIED:
                        status = worker.kill()
                        reason = (f"reading it took more than {wall_limit:g} s"
                                  if message is _TIMED_OUT else _death_reason(status))
                        results.append((Overrun(reason), None))
                        _replace(holder)
                        break
                    index, ok, value, usage, spent = message
                    assert index == len(results) - start
                    worker.served += 1
                    results.append((value if ok else Overrun(value), usage))
                    if spent:  # its heap is suspect after a MemoryError: start afresh
                        _replace(holder)
                        break
        return results

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


#: The process's pool; closed at exit.
POOL = ReaderPool()
atexit.register(POOL.close)


# --- the worker's side --------------------------------------------------------------------


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _set_limits() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _arm_cpu_budget() -> None:
    """Let the kernel end this process once it spends CPU_BUDGET more seconds."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used) + CPU_BUDGET
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _cpu_now() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _resolve(target: str) -> Callable[..., Any]:
    module, _, attribute = target.partition(":")
    return cast(Callable[..., Any], getattr(importlib.import_module(module), attribute))


def worker_main() -> None:
    """Serve calls on stdin/stdout until stdin closes."""
    _set_limits()
    sys.setrecursionlimit(2000)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    for target in ALLOWED.values():  # import before the first budget: no item pays for it
        _resolve(target)
    ready = pickle.dumps(_READY, protocol=pickle.HIGHEST_PROTOCOL)
    stdout.write(_HEADER.pack(len(ready)) + ready)
    stdout.flush()
    while True:
        header = _read_exactly(stdin, _HEADER.size)
        if header is None:
            return
        payload = _read_exactly(stdin, _HEADER.unpack(header)[0])
        if payload is None:
            return
        target, items, common = pickle.loads(payload)
        function = _resolve(target)
        for index, args in enumerate(items):
            _arm_cpu_budget()
            before = _cpu_now()
            spent = False
            try:
                ok, value = True, function(*args, **common)
            except MemoryError:
                ok, value, spent = False, ("reading it needed more than "
                                           f"{MEMORY_LIMIT // (1024 * 1024)} MiB"), True
            except BaseException as exc:  # anything one item raises is that item's problem
                ok, value = False, f"reading it failed ({type(exc).__name__})"
            usage = Usage(_cpu_now() - before, _peak_rss())
            data = pickle.dumps((index, ok, value, usage, spent), protocol=pickle.HIGHEST_PROTOCOL)
            stdout.write(_HEADER.pack(len(data)) + data)
            stdout.flush()
