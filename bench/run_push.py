"""``syncd run`` measured from inside: change-to-visible latency and idle requests.

Run by :mod:`bench.push` once per provider and mode, after ``bench.run_syncd seed``::

    python -m bench.run_push --provider google --server JSON --database URL --folder DIR \\
        --mode push --samples 100 --spread 30 --idle-seconds 240

The daemon (:class:`syncd.daemon.Daemon`, the one ``syncd run`` starts, with its
scheduler, push gate, CRM watch, HTTP receiver and channel keeper) runs in this process's
main thread with one ``[[account]]`` per owner pointing at the latency proxy. A driver
thread plays the users:

1. **ready**: waits until every account's first cycle linked all its activities and, with
   push, until the channels that will be opened are healthy (``push_channels``);
2. **latency**: ``--samples`` CRM edits (through the store, as ``syncd activity edit``
   would) and as many calendar edits (by "the user", directly on the server, neither
   delayed nor counted), at random times spread over ``--spread`` seconds over all owners;
   each is timed from the edit to the moment the other side shows it (the event's title on
   the server, the activity's subject in the store), looked at every 0.1 s;
3. **idle**: the proxy's counts reset, ``--idle-seconds`` with nothing changing, the
   requests counted (channel renewals included: they go through the proxy too).

``--mode poll`` is syncd without push: no HTTP receiver (so no calendar channel) and no
CRM watch, every account polled every ``--interval`` seconds. Prints the results as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.backends import TZ
from bench.control import Control, ServerInfo
from bench.providers import account, install
from syncd.config import AccountConfig, Config, HttpConfig, PushConfig
from syncd.daemon import Daemon
from syncd.store.channels import ChannelStore
from syncd_testkit.loopback import free_port

LOOK_EVERY = 0.1  # seconds between two looks at whether the changes are visible


@dataclass
class Sample:
    """One change: where it was made, what shows it arrived, and when."""

    direction: str  # "crm->calendar" or "calendar->crm"
    owner: int
    activity_id: int
    at: float  # seconds from the start of the latency phase
    marker: str
    made: float | None = None  # monotonic time of the edit
    seen: float | None = None  # monotonic time of the look that saw it

    @property
    def latency(self) -> float | None:
        return None if self.made is None or self.seen is None else self.seen - self.made


def plan(owners: int, activities: list[list[int]], samples: int, spread: float,
         rng: random.Random) -> list[Sample]:
    """``samples`` changes each way, round robin over the owners, at random times; each
    activity is changed once (CRM edits from the front of an owner's list, calendar edits
    from the back)."""
    out = []
    for k in range(samples):
        owner = k % owners
        nth = k // owners
        mine = activities[owner]
        if 2 * (nth + 1) > len(mine):
            raise ValueError("not enough activities per owner for that many samples")
        out.append(Sample("crm->calendar", owner, mine[nth], rng.uniform(0, spread),
                          f"[crm-{k}]"))
        out.append(Sample("calendar->crm", owner, mine[-1 - nth], rng.uniform(0, spread),
                          f"cal-{k}"))
    return sorted(out, key=lambda s: s.at)


class Driver:
    """The users and the stopwatch, on a thread beside the daemon."""

    def __init__(self, daemon: Daemon, server: ServerInfo, owners: list[str],
                 calendars: dict[str, str], activities: list[list[int]],
                 args: argparse.Namespace) -> None:
        self.daemon, self.args = daemon, args
        self.owners, self.calendars, self.activities = owners, calendars, activities
        self.accounts = list(daemon.config.accounts)
        self.control = Control(server.control)
        self.result: dict[str, Any] = {"mode": args.mode}
        self.cycles: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        sync_one = daemon.service.sync_one

        def counted(acct: AccountConfig, **options: Any) -> Any:
            with self._lock:
                self.cycles[acct.name] += 1
            return sync_one(acct, **options)

        daemon.service.sync_one = counted  # type: ignore[method-assign]

    def run(self) -> None:
        try:
            self.ready()
            self.latency()
            self.idle()
        except BaseException as exc:  # reported by main; the daemon must stop either way
            self.error = exc
        finally:
            self.control.close()
            self.daemon._signal = signal.SIGTERM  # what SIGTERM's handler does

    def _wait(self, what: str, done: Callable[[], bool], timeout: float) -> float:
        start = time.monotonic()
        while not done():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{what}: not within {timeout:.0f} s")
            time.sleep(0.25)
        return round(time.monotonic() - start, 2)

    def ready(self) -> None:
        state = self.daemon.service.state

        def linked() -> bool:
            return all(len(state.links(a.name)) >= len(self.activities[i])
                       for i, a in enumerate(self.accounts))

        self.result["first_sync_s"] = self._wait("first sync", linked, 900)
        channels = ChannelStore(self.daemon.service.db)

        def healthy() -> int:
            return sum(1 for row in channels.all() if row.healthy)

        if self.args.mode == "push" and self.args.channels_timeout > 0:
            # a provider without channels (yet) is measured as it is, and the count says so
            with contextlib.suppress(TimeoutError):
                self._wait("channels", lambda: healthy() >= len(self.accounts),
                           self.args.channels_timeout)
        self.result["channels_healthy"] = healthy()
        self.result["channel_kinds"] = dict(Counter(row.kind for row in channels.all()))
        time.sleep(self.args.quiet)  # the first cycles' echoes settle
        self.events = {}
        for i, a in enumerate(self.accounts):
            for activity_id, link in state.links(a.name).items():
                if link.event_id:
                    self.events[activity_id] = (self.calendars[self.owners[i]], link.event_id)

    def latency(self) -> None:
        rng = random.Random(self.args.seed)
        todo = plan(len(self.owners), self.activities, self.args.samples, self.args.spread, rng)
        samples = list(todo)
        store = self.daemon.service.store
        before = sum(self.cycles.values())
        start = time.monotonic()
        deadline = None
        while todo or any(s.seen is None for s in samples):
            now = time.monotonic()
            while todo and todo[0].at <= now - start:
                s = todo.pop(0)
                calendar, event_id = self.events[s.activity_id]
                if s.direction == "crm->calendar":
                    store.edit_activity(s.activity_id, subject=f"Activity {s.marker}")
                else:
                    self.control.call("edit", calendar=calendar, events=[event_id],
                                      stamp=s.marker)
                s.made = time.monotonic()
            self._look([s for s in samples if s.made is not None and s.seen is None])
            if not todo and deadline is None:
                deadline = time.monotonic() + self.args.give_up
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(LOOK_EVERY)
        self.result["latency"] = {
            "samples": [{"direction": s.direction, "owner": s.owner, "at": round(s.at, 3),
                         "latency_s": None if s.latency is None else round(s.latency, 3)}
                        for s in samples],
            "cycles": sum(self.cycles.values()) - before,
            "wall_s": round(time.monotonic() - start, 1),
        }

    def _look(self, pending: list[Sample]) -> None:
        crm = [s for s in pending if s.direction == "calendar->crm"]
        cal = [s for s in pending if s.direction == "crm->calendar"]
        if cal:
            wanted: dict[str, list[str]] = {}
            for s in cal:
                calendar, event_id = self.events[s.activity_id]
                wanted.setdefault(calendar, []).append(event_id)
            titles = self.control.call("titles", events=wanted)
            now = time.monotonic()
            for s in cal:
                calendar, event_id = self.events[s.activity_id]
                if s.marker in titles.get(calendar, {}).get(event_id, ""):
                    s.seen = now
        if crm:
            found = self.daemon.service.store.get_many([s.activity_id for s in crm])
            now = time.monotonic()
            for s in crm:
                activity = found.get(s.activity_id)
                if activity is not None and f"({s.marker})" in activity.subject:
                    s.seen = now

    def idle(self) -> None:
        if self.args.idle_seconds <= 0:
            return
        time.sleep(self.args.idle_quiet)  # the latency phase's last cycles and echoes end
        self.control.call("stats", reset=True)
        before = sum(self.cycles.values())
        time.sleep(self.args.idle_seconds)
        stats = self.control.call("stats", reset=False)
        self.result["idle"] = {"seconds": self.args.idle_seconds,
                               "requests": stats["requests"],
                               "cycles": sum(self.cycles.values()) - before}


def configure(args: argparse.Namespace, server: ServerInfo, accounts: list[AccountConfig],
              folder: Path) -> Config:
    """The config an admin would write, in ``--mode``: push (receiver, channels, CRM
    watch, backstop) or poll."""
    data = folder / f"data-{args.mode}"
    data.mkdir(mode=0o700, exist_ok=True)
    options: dict[str, Any] = {
        "database": args.database, "workers": args.workers, "accounts": tuple(accounts),
        "data_dir": str(data), "default_time_zone": TZ,
        "interval_seconds": args.interval, "jitter_seconds": args.jitter,
    }
    if args.mode == "push":
        port = free_port()
        tls = server.info.get("certificate"), server.info.get("private_key")
        if tls[0]:  # WebDAV-Push delivers to https only: the receiver serves TLS itself
            options["http"] = HttpConfig(listen=f"127.0.0.1:{port}",
                                         public_url=f"https://127.0.0.1:{port}",
                                         certificate=tls[0], private_key=tls[1])
        else:
            options["http"] = HttpConfig(listen=f"127.0.0.1:{port}",
                                         public_url=f"http://127.0.0.1:{port}",
                                         allow_insecure_http=True)
        options["push"] = PushConfig(backstop_minutes=args.backstop_minutes)
    return Config(**options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", required=True)
    parser.add_argument("--server", required=True, help="the serving process's JSON line")
    parser.add_argument("--database", required=True)
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--mode", choices=("push", "poll"), required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--interval", type=int, default=60)
    parser.add_argument("--jitter", type=int, default=5)
    parser.add_argument("--backstop-minutes", type=int, default=15)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--spread", type=float, default=30.0)
    parser.add_argument("--give-up", type=float, default=120.0,
                        help="seconds after the last change before an unseen one is lost")
    parser.add_argument("--quiet", type=float, default=5.0)
    parser.add_argument("--idle-seconds", type=float, default=0.0)
    parser.add_argument("--idle-quiet", type=float, default=15.0,
                        help="seconds between the latency phase and the idle window")
    parser.add_argument("--channels-timeout", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)

    server = ServerInfo.from_json(args.server)
    data = json.loads((args.folder / "owners.json").read_text())
    owners, calendars, activities = data["owners"], data["calendars"], data["activities"]
    install(args.provider, server)
    accounts = [account(args.provider, server, o, calendars[o]) for o in owners]
    logging.basicConfig(filename=str(args.folder / f"daemon-{args.mode}.log"),
                        level=logging.INFO,
                        format="%(asctime)s %(threadName)s %(name)s %(message)s")
    daemon = Daemon(configure(args, server, accounts, args.folder))
    if args.mode == "poll":
        daemon.start_crm_watch = lambda: None  # type: ignore[method-assign]
    driver = Driver(daemon, server, owners, calendars, activities, args)
    thread = threading.Thread(target=driver.run, name="bench-driver", daemon=True)
    thread.start()
    code = daemon.run()
    thread.join(60)
    if driver.error is not None:
        print(f"bench.run_push: {type(driver.error).__name__}: {driver.error}",
              file=sys.stderr)
        return 1
    driver.result["daemon_exit"] = code
    print(json.dumps(driver.result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
