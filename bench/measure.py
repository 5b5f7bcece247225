"""Measuring one phase: wall and CPU time, memory, requests, and (for syncd) SQL statements."""

from __future__ import annotations

import resource
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bench.control import Control

WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE", "MKCALENDAR", "PROPPATCH"})


def rss_mib() -> float:
    """This process's peak resident set size so far (ru_maxrss, KiB on Linux), in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Phase:
    """What one phase cost."""

    name: str
    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    rss_mib: float = 0.0
    heap_peak_mib: float | None = None
    requests: dict[str, Any] = field(default_factory=dict)
    sql: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    per_account_s: list[float] = field(default_factory=list)
    changes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        """API calls that write (batch parts counted one by one)."""
        calls = self.requests.get("calls", {})
        return sum(v for k, v in calls.items() if k in WRITE_METHODS)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["writes"] = self.writes
        data["http_requests"] = sum(self.requests.get("http", {}).values())
        data["api_calls"] = sum(self.requests.get("calls", {}).values())
        per = sorted(self.per_account_s)
        data["per_account_s"] = {
            "n": len(per), "mean": round(sum(per) / len(per), 4) if per else None,
            "p50": round(per[len(per) // 2], 4) if per else None,
            "max": round(per[-1], 4) if per else None,
        }
        for key in ("wall_s", "cpu_s", "server_cpu_s", "rss_mib"):
            data[key] = round(data[key], 3)
        if self.heap_peak_mib is not None:
            data["heap_peak_mib"] = round(self.heap_peak_mib, 1)
        return data


class SqlCounter:
    """Counts the SQL statements an engine runs, by kind (select / write / other)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, engine: Any) -> None:
        from sqlalchemy import event

        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        kind = ("select" if verb in ("SELECT", "WITH", "PRAGMA") else
                "write" if verb in ("INSERT", "UPDATE", "DELETE") else "other")
        with self._lock:
            self.counts[kind] += 1

    def take(self) -> dict[str, int]:
        with self._lock:
            data = dict(self.counts)
            self.counts.clear()
        return data


@contextmanager
def measure(name: str, control: Control, sql: SqlCounter | None = None
            ) -> Iterator[Phase]:
    """Measure the body as phase ``name``; the proxy's counts are reset when it starts."""
    phase = Phase(name)
    before = control.call("stats", reset=True)
    if sql is not None:
        sql.take()
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    yield phase
    phase.wall_s = time.perf_counter() - wall0
    phase.cpu_s = time.process_time() - cpu0
    if tracemalloc.is_tracing():
        phase.heap_peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
    after = control.call("stats", reset=True)
    phase.requests = after["requests"]
    phase.server_cpu_s = after["server_cpu_s"] - before["server_cpu_s"]
    phase.rss_mib = rss_mib()
    if sql is not None:
        phase.sql = sql.take()


class HeapWatcher:
    """With tracemalloc on, keeps a heap snapshot taken near the peak.

    A thread looks at the traced size every ``interval`` seconds and takes a snapshot
    whenever it is ``step`` times the last one's, so the snapshot kept is within that
    factor of the peak; :meth:`stop` returns its biggest allocation sites.
    """

    def __init__(self, interval: float = 0.25, step: float = 1.1) -> None:
        self.interval, self.step = interval, step
        self.best: tracemalloc.Snapshot | None = None
        self.best_size = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="heap-watch")

    def start(self) -> HeapWatcher:
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            size = tracemalloc.get_traced_memory()[0]
            if size > self.best_size * self.step:
                self.best = tracemalloc.take_snapshot()
                self.best_size = size

    def stop(self, top: int = 25) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join()
        if self.best is None:
            return []
        snapshot = self.best.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        out = []
        for stat in snapshot.statistics("lineno")[:top]:
            out.append({"site": _where(stat.traceback[0]), "mib": round(stat.size / 2**20, 2),
                        "blocks": stat.count})
        if tracemalloc.get_traceback_limit() > 1:
            # With deeper tracebacks, say who called the biggest sites.
            for stat in snapshot.statistics("traceback")[:5]:
                out.append({"site": " <- ".join(_where(f) for f in stat.traceback),
                            "mib": round(stat.size / 2**20, 2), "blocks": stat.count})
        return [{"site": "(total traced at the snapshot)",
                 "mib": round(self.best_size / 2**20, 1), "blocks": 0}, *out]


def _where(frame: tracemalloc.Frame) -> str:
    name = frame.filename.split("site-packages/")[-1].split("/work/main/")[-1]
    return f"{name}:{frame.lineno}"
