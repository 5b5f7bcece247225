"""The chaos soak (issue 18): random edits on both sides, faults, kills, then the oracle.

For one calendar provider (Radicale, Xandikos, the Google or the Graph emulator) and one
CRM (syncd's built-in store, or the Pipedrive emulator), with N activities over U owners:

1. the servers start on loopback (:mod:`bench.backends`, :mod:`syncd_testkit.servers`),
   each behind a proxy that injects faults (:mod:`bench.soak_faults`); syncd's config is
   a TOML file in a temporary folder pointing at the proxies;
2. every round, the driver makes random changes: CRM edits of title, time, duration,
   busy/free, location, description, note, guests, done/undone, owner moves, creates and
   deletes; calendar edits and deletes made directly on the server, as the user's app
   would; and conflicting edits of one field on both sides. With ``--import`` half the
   accounts have ``import_events = true`` and the user also makes events in the calendar
   (timed, whole-day, some weekly series, some with guests), in importing calendars and
   in the others. Each is told to the oracle (:mod:`bench.soak_model`), which never reads
   syncd's state;
3. then one ``syncd sync`` runs as a child process (the real CLI), sometimes killed: by
   ``SYNCD_FAILPOINT=name:N`` (SIGKILL at the N-th pass of a named point) or by a SIGKILL
   from here at a random moment;
4. at the end the faults stop (``proxy.quiet()``) and fault-free cycles run until one
   writes nothing; then ``syncd verify --json`` must be clean, and the oracle compares
   both sides with what the driver did (:func:`bench.soak_model.judge`).

Run: ``.venv/bin/python -m bench.soak --providers caldav,google --n 300 --owners 4
--cycles 30 --out bench/results/soak.md``. It prints one table row per provider (and
the findings in detail when there are any) and exits 1 when a promise was broken.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.backends import TZ, GoogleBackend, GraphBackend, RadicaleBackend
from bench.control import ServerInfo
from bench.providers import GRAPH_SECRET_ENV, account
from bench.soak_calendar import CalendarUser, NewEvent, XandikosBackend, shifted
from bench.soak_code import commit, source_stamp
from bench.soak_crm import BuiltinCrm, Crm, PipedriveCrm, local_parts
from bench.soak_faults import DEFAULT_RATES, REQUEST_TIMEOUT_SECONDS, TRAFFIC, open_proxy
from bench.soak_mail import Cycle, MailFindings, judge_mail
from bench.soak_model import CALENDAR, CRM, SYNCED, CrmItem, Findings, Model, judge, tag_of
from syncd.model import When
from syncd.store.db import Database
from syncd.store.state import StateStore

PROVIDERS = ("caldav", "xandikos", "google", "outlook")
FAILPOINTS = ("after_write_request", "after_intent_commit", "before_cursor_commit")
#: With Pipedrive as the CRM: a calendar edit's PATCH.
PIPEDRIVE_FAILPOINTS = ("pipedrive_after_patch",)
#: With ``--import``: between an imported activity's creation and its link (any CRM),
#: and around Pipedrive's POST of it (its marker intent committed, its id not yet).
IMPORT_FAILPOINTS = ("after_crm_import",)
PIPEDRIVE_IMPORT_FAILPOINTS = ("pipedrive_before_post", "pipedrive_after_post")
CRMS = ("builtin", "pipedrive")
PIPEDRIVE_TOKEN_ENV = "SOAK_PIPEDRIVE_TOKEN"
#: Counts of a cycle's writes: a cycle with none of them is quiet.
WRITES = ("events_created", "events_updated", "events_deleted", "activities_updated",
          "activities_imported", "activities_deleted")
#: How often each kind of change is drawn.
OPS = {"crm_edit": 30, "cal_edit": 25, "conflict": 10, "note": 5, "guests": 6, "done": 5,
       "move": 5, "crm_create": 3, "crm_delete": 3, "cal_delete": 3}
#: With ``--invite``, also meetings logged after they happened (nothing may be mailed).
INVITE_OPS = {**OPS, "backfill": 2}
#: With ``--import``, also events the user makes in the calendar.
IMPORT_OPS = {"cal_create": 15}
#: Changes that write to the CRM: drawn among the items the CRM holds (an event made in
#: the calendar once its import is confirmed; never one that must not be imported).
CRM_OPS = frozenset({"crm_edit", "conflict", "note", "guests", "done", "move", "crm_delete"})
#: Removals (deletes on either side, moves away) allowed per owner between two clean
#: cycles: below the deletion guard (max(5, 10 %) of an account's links per cycle).
REMOVALS_PER_OWNER = 3
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Options:
    provider: str
    n: int = 300
    crm: str = "builtin"  # or "pipedrive" (the emulator, behind a fault proxy of its own)
    owners: int = 4
    cycles: int = 30
    seed: int = 1
    ops: int = 0  # changes per round; 0: n // 40, at least 4
    failpoint_kills: float = 0.2  # share of cycles run with a failpoint
    random_kills: float = 0.2  # share of cycles SIGKILLed at a random moment
    faults: bool = True
    expire_tokens: float = 0.03  # share of rounds in which the server expires sync tokens
    edit_unconfirmed: bool = False  # also edit events whose create syncd may not have seen
    zygote: bool = True  # fork the children from a process that imported syncd already
    minutes: float = 0.0  # no round starts this long after the soak started (0: no limit)
    #: Accounts each round's ``syncd sync`` runs: the owners the round's changes touched,
    #: topped up at random to this many (0: every account, every round). A daemon runs
    #: each account on its own schedule; a subset keeps a round cheap at 100 owners, so
    #: the kills land in accounts with work to do.
    accounts_per_cycle: int = 0
    invite: bool = False  # accounts with invite_guests = true; the e-mail oracle judges
    #: Every other account has import_events = true, and the user makes events in the
    #: calendars: each becomes one activity there, none elsewhere.
    imports: bool = False
    workdir: Path | None = None
    settle_limit: int = 15
    child_timeout: float = 900.0


@dataclass
class Result:
    provider: str
    n: int
    owners: int
    cycles: int = 0
    kills_failpoint: int = 0
    kills_random: int = 0
    failed_cycles: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    traffic: dict[str, int] = field(default_factory=dict)
    faults_injected: bool = False
    ops: Counter[str] = field(default_factory=Counter)
    settle_cycles: int = 0
    initial_cycles: int = 0
    quiet: bool = False
    verify_clean: bool = False
    verify_findings: list[str] = field(default_factory=list)
    conflicts: int = 0
    refused: int = 0  # cycles a guard refused (the driver keeps removals under them)
    findings: Findings = field(default_factory=Findings)
    emails: int = 0
    mail: MailFindings | None = None  # with --invite (bench.soak_mail)
    imports: str = ""  # with --import: what the user made in the calendars, in words
    wall_s: float = 0.0
    crm: str = "builtin"
    #: Wall seconds by phase (set-up, first sync, changes, cycles, settle, judge).
    seconds: dict[str, float] = field(default_factory=dict)
    code: str = ""  # the checkout's commit (bench.soak_code.commit)
    code_changed: bool = False  # the source changed under the run: no result

    @property
    def ok(self) -> bool:
        return (self.quiet and self.verify_clean and self.findings.clean
                and (self.mail is None or self.mail.clean) and not self.code_changed)


class Soak:
    """One provider's soak: set up, rounds, settle, judge."""

    def __init__(self, options: Options, folder: Path) -> None:
        self.o = options
        self.folder = folder
        self.rng = random.Random(options.seed)
        # its own draws, so that a seed's changes stay those of earlier runs
        self.token_rng = random.Random(options.seed + 1)
        self.model = Model()
        self.result = Result(options.provider, options.n, options.owners, crm=options.crm)
        self.owners = [f"u{k:03d}@soak.example" for k in range(options.owners)]
        self.ids: dict[int, int] = {}  # item index -> activity id
        self.index_of: dict[int, int] = {}  # activity id -> item index
        self.removals: Counter[str] = Counter()
        self.used_when: dict[int, set[Any]] = {}
        self.events: dict[str, dict[str, str]] = {}  # owner -> tag -> event id (this round)
        # Items created or moved since the last cycle in which every account was ok: their
        # new event may be a create whose answer syncd has not seen yet. Unless
        # ``edit_unconfirmed``, the user leaves such events alone (see bench/README.md: the
        # adoption finding, fixed in c7dfc74).
        self.fresh: set[int] = set()
        self.touched: set[str] = set()  # owners whose items this round changed
        # With imports: the owners whose accounts import, and the events made in their
        # calendars since their account's last ok cycle (their import is not confirmed:
        # a CRM edit of an activity Pipedrive has not handed back to syncd yet is a
        # documented window, docs/pipedrive.md).
        self.importing = {o for k, o in enumerate(self.owners) if k % 2 == 0} \
            if options.imports else set()
        self.unimported: set[int] = set()
        self.owner_of = {o.split("@")[0]: o for o in self.owners}  # account name -> owner
        self.cycle_seconds = 5.0
        self.zygote: Zygote | None = None
        self.counter = 0
        self.cycles: list[Cycle] = []  # every sync child, for the e-mail oracle
        self.initial = True  # the first sync's cycles run
        self.started_at = datetime.now(UTC)
        self.journal = (folder / "journal.log").open("a")

    def note(self, text: str) -> None:
        """One line of the journal (every change and cycle, for replaying a finding)."""
        self.journal.write(text + "\n")

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Count the block's wall time to ``phase`` (where a long soak's time goes)."""
        started = time.monotonic()
        try:
            yield
        finally:
            spent = time.monotonic() - started
            self.result.seconds[phase] = self.result.seconds.get(phase, 0.0) + spent

    # ---- set-up ---------------------------------------------------------------------

    def start(self) -> None:
        provider = self.o.provider
        self.backend: Any = {"caldav": RadicaleBackend, "xandikos": XandikosBackend,
                             "google": GoogleBackend, "outlook": GraphBackend}[provider]()
        host, port = self.backend.start(self.folder)
        self.calendars = self.backend.create_calendars(self.owners)
        kind = {"google": "google", "outlook": "graph"}.get(provider, "caldav")
        self.proxy = open_proxy(f"http://{host}:{port}", provider=kind, seed=self.o.seed,
                                rates=DEFAULT_RATES if self.o.faults else None)
        self.result.faults_injected = bool(getattr(self.proxy, "injecting", False))
        self.user = CalendarUser(provider, self.backend, self.calendars)
        data = self.folder / "data"
        data.mkdir(mode=0o700, exist_ok=True)
        self.db_url = f"sqlite:///{data / 'syncd.db'}"
        info = self.backend.info()
        api = self.proxy.url.rstrip("/")
        server = ServerInfo(provider, api, f"http://{host}:{port}", "", info)
        self.config = self.folder / "syncd.toml"
        self.env = {k: v for k, v in os.environ.items() if k != "SYNCD_FAILPOINT"}
        crm_table, self.crm_proxy = "", None
        if self.o.crm == "pipedrive":
            pipedrive = PipedriveCrm(seats=len(self.owners) + 2)
            self.crm_proxy = open_proxy(pipedrive.url, provider="pipedrive",
                                        seed=self.o.seed + 1,
                                        rates=DEFAULT_RATES if self.o.faults else None)
            crm_table = pipedrive.config(self.crm_proxy.url, PIPEDRIVE_TOKEN_ENV)
            self.env[PIPEDRIVE_TOKEN_ENV] = pipedrive.token
        self.config.write_text(config_text(provider, data, [
            account(provider, server, o, self.calendars[o]) for o in self.owners],
            invite=self.o.invite, importing=self.importing) + crm_table)
        self.config.chmod(0o600)
        if provider == "outlook":
            self.env[GRAPH_SECRET_ENV] = info["client_secret"]
            self.env["SOAK_IDENTITY"] = json.dumps(
                {"authority_host": info["authority_host"], "identity_url": info["identity_url"]})
        if self.o.zygote:
            self.zygote = Zygote(self.folder, self.env)
        self.crm: Crm = pipedrive if self.o.crm == "pipedrive" else BuiltinCrm(self.db_url)
        self.state = StateStore(Database(self.db_url, run_migrations=False))
        self.crm.add_users(self.owners)
        self.seed_activities()

    def seed_activities(self) -> None:
        first = (datetime.now(UTC) + timedelta(days=2)).date()
        for start in range(0, self.o.n, 1000):
            indexes = list(range(start, min(self.o.n, start + 1000)))
            self.create([(i, self.owners[i % len(self.owners)], first) for i in indexes])

    def create(self, batch: Sequence[tuple[int, str, date]], past: bool = False) -> None:
        items = [self.new_activity(i, owner, first) for i, owner, first in batch]
        for (i, _, _), item in zip(batch, items, strict=True):
            if past:  # ended days ago: edits of its time are never drawn (see next_value)
                item["due_date"] = datetime.now(UTC).date() - timedelta(days=2 + i % 7)
                item["guests"] = [f"guest{i % 97}@customer.example"]
        ids = self.crm.add(items)
        for (i, _, _), activity_id in zip(batch, ids, strict=True):
            self.ids[i], self.index_of[activity_id] = activity_id, i
        held = self.crm.read(ids)
        for (i, owner, _), item, activity_id in zip(batch, items, ids, strict=True):
            self.model.created(i, owner, item["note"], held[activity_id].projection)

    def new_activity(self, i: int, owner: str, first: date) -> dict[str, Any]:
        item: dict[str, Any] = {
            "owner": owner, "subject": f"{tag_of(i)} Visit", "type": "meeting",
            "due_date": first + timedelta(days=(i * 7) % 120),
            "duration_minutes": (30, 45, 60)[i % 3], "busy": i % 2 == 0,
            "note": f"private canary {self.rng.getrandbits(64):016x} of {tag_of(i)}",
        }
        if i % 10:
            item["due_time"] = datetime.min.time().replace(hour=8 + i % 9, minute=15 * (i % 4))
        if i % 3 == 0:
            item["location"] = f"Room {i % 40}"
        if i % 2:
            item["description"] = f"Agenda of {tag_of(i)}: pricing and next steps"
        if i % (2 if self.o.invite else 5) == 0:  # inviting teams: more meetings with guests
            item["guests"] = [f"guest{i % 97}@customer.example"]
        return item

    def crm_projection(self, activity_id: int) -> dict[str, Any]:
        held = self.crm.read([activity_id])[activity_id]
        return dict(held.projection)

    # ---- the driver -----------------------------------------------------------------

    def next_value(self, side: str, name: str, index: int, current: Any) -> Any:
        self.counter += 1
        n = self.counter
        tag = tag_of(index)
        if name == "title":
            return f"{tag} {side} title {n}"
        if name == "description":
            return f"{side} agenda {n} for {tag}: pricing, rollout and next steps"
        if name == "location":
            return f"{side} room {n}"
        if name == "busy":
            return not current
        assert isinstance(current, When)
        used = self.used_when.setdefault(index, set())
        used.add((str(current.start), str(current.end)))
        for _ in range(50):
            moved = shifted(current, self.rng.choice((-2, -1, 1, 2)),
                            self.rng.choice((None, 15, 30, 45, 60, 90)))
            if (str(moved.start), str(moved.end)) not in used and _in_future(moved):
                used.add((str(moved.start), str(moved.end)))
                return moved
        return None

    def live_index(self, in_crm: bool = False) -> int | None:
        """A live item at random; ``in_crm``: one whose activity the CRM's user can see."""
        live = [i.index for i in self.model.live()
                if not in_crm or (not i.foreign and i.index in self.ids
                                  and i.index not in self.unimported)]
        return self.rng.choice(live) if live else None

    def event_of(self, index: int) -> tuple[str, str] | None:
        owner = self.model.items[index].owner
        if owner not in self.events:
            self.events[owner] = {}
            for event, _raw in self.user.read(owner):
                title = event.projection.title if event.projection else ""
                self.events[owner][title.split(" ", 1)[0]] = event.event_id
        event_id = self.events[owner].get(tag_of(index))
        return (owner, event_id) if event_id else None

    def crm_write(self, index: int, name: str) -> bool:
        activity_id = self.ids[index]
        current = self.crm_projection(activity_id)
        if not current:
            return False
        value = self.next_value(CRM, name, index, When.from_json(current["when"])
                                if name == "when" else current.get(name))
        if value is None:
            return False
        fields: dict[str, Any]
        if name == "title":
            fields = {"subject": value}
        elif name == "when":
            if value.all_day:
                fields = {"due_date": value.start}
            else:
                day, clock = local_parts(value.start)
                minutes = int((value.end - value.start).total_seconds() // 60)
                fields = {"due_date": day, "due_time": clock, "duration_minutes": minutes}
        else:
            fields = {name: value}
        after = self.crm.edit(activity_id, **fields)
        self.model.wrote(index, CRM, name, after[name])
        self.note(f"    {tag_of(index)} crm {name} = {after[name]!r}")
        return True

    def cal_write(self, index: int, name: str) -> bool:
        found = self.event_of(index) if self.confirmed(index) else None
        if found is None:
            return False
        owner, event_id = found
        event = self.user.current(owner, event_id)
        if event is None or event.projection is None:
            return False
        value = self.next_value(CALENDAR, name, index, event.projection.get(name))
        if value is None or not self.user.edit(owner, event_id, name, value):
            return False
        written = value.to_json() if isinstance(value, When) else value
        self.model.wrote(index, CALENDAR, name, written)
        self.note(f"    {tag_of(index)} calendar {name} = {written!r} ({owner} {event_id})")
        return True

    def confirmed(self, index: int) -> bool:
        return self.o.edit_unconfirmed or index not in self.fresh

    def removal_allowed(self, owner: str) -> bool:
        return self.removals[owner] < REMOVALS_PER_OWNER

    def change(self) -> None:
        """One random change (or none, when its target is not there yet)."""
        ops = {**(INVITE_OPS if self.o.invite else OPS), **(IMPORT_OPS if self.o.imports else {})}
        op = self.rng.choices(list(ops), weights=list(ops.values()))[0]
        if op == "cal_create":
            self.cal_create()
            return
        index = self.live_index(in_crm=op in CRM_OPS)
        recent = sorted(i for i in self.unimported if self.model.items[i].deleted_by is None)
        if op in ("cal_edit", "cal_delete") and recent and self.rng.random() < 0.5:
            index = self.rng.choice(recent)  # the user fixes or drops what they just made
        if index is None:
            return
        item = self.model.items[index]
        self.touched.add(item.owner)
        done = False
        name = self.rng.choice(("title", "when", "busy", "location", "description"))
        if op == "crm_edit":
            done = self.crm_write(index, name)
        elif op == "cal_edit":
            done = self.cal_write(index, name)
        elif op == "conflict":
            first, second = self.rng.sample([self.crm_write, self.cal_write], 2)
            done = first(index, name) and second(index, name)
        elif op == "note":
            self.counter += 1
            note = f"private canary {self.rng.getrandbits(64):016x} of {item.tag}"
            self.crm.edit(self.ids[index], note=note)
            item.note, done = note, True
        elif op == "guests":
            current = self.crm_projection(self.ids[index]).get("guests", [])
            self.counter += 1
            guests = set(current)
            if guests and self.rng.random() < 0.5:
                guests.discard(self.rng.choice(sorted(guests)))
            else:
                guests.add(f"g{self.counter}@customer.example")
            after = self.crm.edit(self.ids[index], guests=sorted(guests))
            self.model.wrote(index, CRM, "guests", after["guests"])
            done = True
        elif op == "done":
            self.crm.set_done(self.ids[index], not item.done)
            self.model.set_done(index, not item.done)
            done = True
        elif op == "move":
            target = self.rng.choice([o for o in self.owners if o != item.owner] or [item.owner])
            if target != item.owner and self.removal_allowed(item.owner):
                self.removals[item.owner] += 1
                self.crm.move(self.ids[index], target)
                self.model.moved(index, target)
                self.fresh.add(index)
                self.touched.add(target)
                done = True
        elif op == "crm_create":
            i = max(self.model.items) + 1
            first = (datetime.now(UTC) + timedelta(days=2)).date()
            self.create([(i, self.rng.choice(self.owners), first)])
            self.fresh.add(i)
            self.touched.add(self.model.items[i].owner)
            done = True
        elif op == "backfill":
            i = max(self.model.items) + 1
            self.create([(i, self.rng.choice(self.owners), date.today())], past=True)
            self.fresh.add(i)
            done = True
        elif op == "crm_delete" and self.removal_allowed(item.owner):
            self.removals[item.owner] += 1
            self.crm.delete(self.ids[index])
            self.model.deleted(index, CRM)
            done = True
        elif op == "cal_delete" and self.removal_allowed(item.owner) and self.confirmed(index):
            found = self.event_of(index)
            if found is not None and self.user.delete(*found):
                self.removals[item.owner] += 1
                self.model.deleted(index, CALENDAR)
                done = True
        self.result.ops[op if done else "skipped"] += 1
        self.note(f"  {op} {item.tag} {name if 'edit' in op or op == 'conflict' else ''}"
                  f"{'' if done else ' (skipped)'}")

    def cal_create(self) -> None:
        """The user makes an event in a calendar: 3 in 4 in an importing one, some whole
        days (one or two), some with guests, one in 10 a weekly series (never imported)."""
        owners = sorted(self.importing) if self.importing and self.rng.random() < 0.75 \
            else [o for o in self.owners if o not in self.importing] or self.owners
        owner = self.rng.choice(owners)
        i = max(self.model.items) + 1
        tag = tag_of(i)
        day = (datetime.now(UTC) + timedelta(days=self.rng.randint(2, 120))).date()
        if self.rng.random() < 0.25:
            when = When(day, day + timedelta(days=self.rng.choice((1, 1, 2))), TZ)
        else:
            start = datetime.combine(day, datetime.min.time().replace(
                hour=self.rng.randint(8, 17), minute=self.rng.choice((0, 15, 30, 45))),
                tzinfo=ZoneInfo(TZ))
            when = When(start, start + timedelta(minutes=self.rng.choice((30, 45, 60, 90))), TZ)
        self.counter += 1
        new = NewEvent(
            f"{tag} calendar call {self.counter}", when, self.rng.random() < 0.5,
            location=f"calendar room {self.counter}" if self.rng.random() < 0.5 else "",
            description=(f"calendar agenda {self.counter} for {tag}"
                         if self.rng.random() < 0.5 else ""),
            guests=[f"c{self.counter}@customer.example"] if self.rng.random() < 0.25 else [],
            weekly=3 if self.rng.random() < 0.1 else 0)
        event_id = self.user.create(owner, new)
        read = self.user.current(owner, event_id)
        projection = read.projection.to_json() if read is not None and read.projection else {}
        foreign = owner not in self.importing or bool(new.weekly)
        self.model.created(i, owner, "", projection, side=CALENDAR, foreign=foreign,
                           event_id=event_id)
        if not foreign:
            self.unimported.add(i)
        self.touched.add(owner)
        self.result.ops["cal_create" + (" (series)" if new.weekly else
                                        "" if not foreign else " (not imported)")] += 1
        self.note(f"  cal_create {tag} {owner} {event_id} {'series ' if new.weekly else ''}"
                  f"{'foreign ' if foreign else ''}{projection}")

    def discover(self) -> None:
        """Find the activities of the events made in importing calendars, as the CRM's user
        would see them appear (by the tag their subject carries; the oldest of several)."""
        missing = {i.tag: i.index for i in self.model.imported() if i.index not in self.ids}
        if not missing:
            return
        for tag, ids in self.crm.tagged().items():
            if tag in missing:
                self.ids[missing[tag]], self.index_of[ids[0]] = ids[0], missing[tag]

    def expire_tokens(self) -> None:
        self.note("  the server expires its sync tokens")
        if self.o.provider == "google":
            self.backend.emu.expire_sync_tokens()
        elif self.o.provider == "outlook":
            self.backend.graph.expire_delta_tokens()
        else:
            return
        self.result.faults["expired_token (server)"] = \
            self.result.faults.get("expired_token (server)", 0) + 1

    def expire_access_tokens_later(self) -> tuple[threading.Timer, list[bool]] | None:
        """On Graph, in the share ``expire_tokens`` of the cycles, the identity platform
        ends every access token at a random moment of the cycle (one revoked, or expired
        early): syncd's next Graph request meets 401 and must get a new token, losing
        nothing. Returns the timer and a flag set when it fired (None: not this cycle)."""
        if self.o.provider != "outlook" or self.token_rng.random() >= self.o.expire_tokens:
            return None
        fired: list[bool] = []

        def expire() -> None:
            self.backend.identity.expire_access_tokens()
            fired.append(True)

        timer = threading.Timer(self.token_rng.uniform(0.1, max(0.5, self.cycle_seconds)),
                                expire)
        timer.start()
        return timer, fired

    # ---- cycles ---------------------------------------------------------------------

    def syncd(self, *args: str, failpoint: str | None = None, kill_after: float | None = None,
              timeout: float | None = None) -> tuple[int, str]:
        """Run the CLI once; returns its exit status (-9 when killed) and its output."""
        env = dict(self.env)
        if failpoint:
            env["SYNCD_FAILPOINT"] = failpoint
        if self.zygote is not None:
            return self.zygote.run(["--config", str(self.config), *args], env,
                                   kill_after, timeout or self.o.child_timeout)
        command = [sys.executable, "-m", "bench.soak_cli", "--config", str(self.config), *args]
        child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        timer = None
        if kill_after is not None:
            timer = threading.Timer(kill_after, _kill, (child,))
            timer.start()
        try:
            out, err = child.communicate(timeout=timeout or self.o.child_timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        finally:
            if timer is not None:
                timer.cancel()
        return child.returncode, out + err

    def cycle(self) -> None:
        roll = self.rng.random()
        failpoint = kill_after = None
        if roll < self.o.failpoint_kills:
            points = FAILPOINTS + (PIPEDRIVE_FAILPOINTS if self.o.crm == "pipedrive" else ())
            if self.o.imports and self.rng.random() < 0.5:
                # A round makes a few imports at most: their points are drawn half the
                # time, at their first or second pass, or they would hardly ever fire.
                points = IMPORT_FAILPOINTS + (
                    PIPEDRIVE_IMPORT_FAILPOINTS if self.o.crm == "pipedrive" else ())
                failpoint = f"{self.rng.choice(points)}:{self.rng.randint(1, 2)}"
            else:
                failpoint = f"{self.rng.choice(points)}:{self.rng.randint(1, 3)}"
        elif roll < self.o.failpoint_kills + self.o.random_kills:
            kill_after = self.rng.uniform(0.3, max(0.5, self.cycle_seconds))
        started = time.monotonic()
        expiry = self.expire_access_tokens_later()
        status, output = self.sync(*self.chosen(), failpoint=failpoint,
                                   kill_after=kill_after)
        took = time.monotonic() - started
        if expiry is not None:
            expiry[0].cancel()
            expiry[0].join()
            if expiry[1]:
                self.note("  the identity platform ended every access token")
                key = "expired_access_token (identity)"
                self.result.faults[key] = self.result.faults.get(key, 0) + 1
        self.result.cycles += 1
        self.wake(output)
        self.note(f"cycle {self.result.cycles}: failpoint {failpoint} kill_after "
                  f"{kill_after and round(kill_after, 2)} status {status} took {took:.1f} s "
                  f"writes {_writes(output)} {_counts(output)}")
        self.journal.flush()
        if status == -signal.SIGKILL:
            if failpoint:
                self.result.kills_failpoint += 1
            else:
                self.result.kills_random += 1
        else:
            self.cycle_seconds = 0.7 * self.cycle_seconds + 0.3 * took
            if status != 0:
                self.result.failed_cycles += 1
            self.confirm(output)
        if self.o.imports:
            self.discover()
        self.events.clear()
        self.touched.clear()

    def chosen(self) -> list[str]:
        """``--account`` options for this round's cycle (none: every account)."""
        wanted = self.o.accounts_per_cycle
        if not wanted or wanted >= len(self.owners):
            return []
        names = {o.split("@")[0] for o in self.touched}
        rest = sorted(set(self.owner_of) - names)
        names.update(self.rng.sample(rest, max(0, min(len(rest), wanted - len(names)))))
        return [arg for name in sorted(names) for arg in ("--account", name)]

    def confirm(self, output: str) -> None:
        """Forget the removals and the unconfirmed items of each account whose cycle was
        ok: its deletion guard counts afresh, and its creates' answers were seen."""
        ok = self.ok_owners(output)
        for owner in ok:
            self.removals.pop(owner, None)
        self.fresh = {i for i in self.fresh if self.model.items[i].owner not in ok}
        self.unimported = {i for i in self.unimported if self.model.items[i].owner not in ok}

    def sync(self, *args: str, failpoint: str | None = None,
             kill_after: float | None = None, timeout: float | None = None
             ) -> tuple[int, str]:
        """One ``syncd sync`` child, recorded for the e-mail oracle: where it started in
        the driver's actions and the mail log, and the accounts it ended "ok"."""
        seq, start = self.model.seq, len(self.mail_log())
        status, output = self.syncd("--json", "sync", *args, failpoint=failpoint,
                                    kill_after=kill_after, timeout=timeout)
        self.cycles.append(Cycle(seq, start, self.ok_owners(output), self.initial))
        return status, output

    def ok_owners(self, output: str) -> frozenset[str]:
        """The owners whose account a ``sync --json`` reported "ok"."""
        reports = _json(output)
        return frozenset(self.owner_of[str(r.get("account"))] for r in reports
                         if isinstance(r, dict) and r.get("outcome") == "ok"
                         and str(r.get("account")) in self.owner_of
                         ) if isinstance(reports, list) else frozenset()

    def wake(self, output: str) -> None:
        """Resume the accounts resting after failures (what ``syncd resume`` does): the
        soak compresses hours of a daemon's cycles, so it does not wait out the back-off.
        A guard's refusal is counted, and trips again if its cause is still there."""
        for report in _json(output) or []:
            if not isinstance(report, dict):
                continue
            if report.get("outcome") == "refused":
                self.result.refused += 1
            if report.get("outcome") in ("skipped", "refused"):
                self.state.resume(str(report.get("account")))

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """No faults on the calendar's proxy nor on the CRM's."""
        with self.proxy.quiet(), self.crm_proxy.quiet() if self.crm_proxy else \
                contextlib.nullcontext():
            yield

    def settle(self, timeout: float | None = None) -> None:
        with self.quiet():
            for _ in range(self.o.settle_limit):
                started = time.monotonic()
                status, output = self.sync(timeout=timeout)
                self.wake(output)
                self.result.settle_cycles += 1
                writes = _writes(output)
                self.note(f"settle: status {status} took {time.monotonic() - started:.1f} s "
                          f"writes {writes} {_counts(output)}")
                self.journal.flush()
                if status == 0 and writes == 0:
                    self.result.quiet = True
                    return

    # ---- the end --------------------------------------------------------------------

    def finish(self) -> None:
        with self.quiet():
            self.judge()
        counts = Counter(self.proxy.counts())
        if self.crm_proxy is not None:  # the CRM's, told apart by a prefix
            counts.update({f"{self.o.crm} {k}": v for k, v in self.crm_proxy.counts().items()})
        self.result.traffic = {k: v for k, v in counts.items() if k.split()[-1] in TRAFFIC}
        self.result.faults.update({k: v for k, v in counts.items()
                                   if k.split()[-1] not in TRAFFIC})

    def judge(self) -> None:
        status, output = self.syncd("--json", "verify")
        self.result.verify_clean = status == 0
        for audit in _json(output) or []:
            if audit.get("error"):
                self.result.verify_findings.append(f"{audit['account']}: {audit['error']}")
            for finding in audit.get("findings", []):
                self.result.verify_findings.append(f"{audit['account']}: {finding['text']}")
        _status, output = self.syncd("--json", "conflicts")
        conflicts = _json(output) or []
        self.result.conflicts = len(conflicts)
        tagged = None
        if self.o.imports:
            self.discover()
            tagged = self.crm.tagged()
        crm = self.crm.read(list(self.ids.values()))
        held = {i: crm.get(a, CrmItem(False)) for i, a in self.ids.items()}
        events = [e for owner in self.owners for e in self.user.seen(owner)]
        emails = self.emails()
        self.result.emails = sum(emails.values())
        if self.o.imports:
            made = [i for i in self.model.items.values() if i.born == CALENDAR]
            imported = [i for i in made if not i.foreign]
            found = sum(i.index in self.ids for i in imported)
            gone = sum(i.deleted_by is not None for i in imported)
            self.result.imports = (
                f"{len(imported)} events made in importing calendars ({found} found in the "
                f"CRM, {gone} deleted since), {len(made) - len(imported)} not to import; "
                "wrong imports {wrong}")
        self.result.findings = judge(self.model, held, events, conflicts, self.index_of,
                                     frozenset(SYNCED) - {"guests"},
                                     None if self.o.invite else emails, tagged)
        if self.o.invite and self.o.provider in ("google", "outlook"):
            self.result.mail = judge_mail(self.model, self.cycles, self.mail_log(), held,
                                          self.started_at)

    def mail_log(self) -> list[Any]:
        """The provider's e-mails so far, in order (none counted on CalDAV)."""
        if self.o.provider == "google":
            return self.backend.emu.mail_log
        if self.o.provider == "outlook":
            return list(self.backend.graph.mail_log)
        return []

    def emails(self) -> Counter[str]:
        if self.o.provider == "google":
            return Counter(self.backend.emu.emails_by_recipient)
        if self.o.provider == "outlook":
            return Counter(self.backend.graph.invitations_by_recipient)
        return Counter()

    def run(self) -> Result:
        started = time.monotonic()
        stamp, self.result.code = source_stamp(ROOT), commit(ROOT)
        with self.timed("set-up"):
            self.start()
        try:
            with self.timed("first sync"):
                # the first sync, whole (the chaos starts from a synced state); at N=30,000
                # one child may create events for longer than a round's time limit
                self.settle(timeout=4 * self.o.child_timeout)
            self.initial = False
            self.result.quiet, self.result.initial_cycles = False, self.result.settle_cycles
            self.result.settle_cycles = 0
            per_round = self.o.ops or max(4, self.o.n // 40)
            for number in range(self.o.cycles):
                if self.o.minutes and time.monotonic() - started > 60 * self.o.minutes:
                    self.note(f"the time limit ({self.o.minutes} min) ends the rounds")
                    break
                self.note(f"round {number + 1}")
                with self.timed("changes"):
                    for _ in range(per_round):
                        self.change()
                    if self.rng.random() < self.o.expire_tokens:
                        self.expire_tokens()
                with self.timed("cycles"):
                    self.cycle()
            with self.timed("settle"):
                self.settle()
            with self.timed("judge"):
                self.finish()
        finally:
            self.stop()
        self.result.code_changed = source_stamp(ROOT) != stamp
        self.result.wall_s = time.monotonic() - started
        return self.result

    def stop(self) -> None:
        self.journal.close()
        if self.zygote is not None:
            self.zygote.stop()
        with contextlib.suppress(Exception):
            self.crm.close()
        with contextlib.suppress(Exception):
            self.state.db.close()
        with contextlib.suppress(Exception):
            self.proxy.stop()
        with contextlib.suppress(Exception):
            if self.crm_proxy is not None:
                self.crm_proxy.stop()
        with contextlib.suppress(Exception):
            self.backend.stop()


def _kill(child: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGKILL)


class Zygote:
    """The ``syncd`` children forked by :mod:`bench.soak_zygote` (imports paid once)."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.out = folder / "child.out"
        self.process = subprocess.Popen([sys.executable, "-m", "bench.soak_zygote"], cwd=ROOT,
                                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)

    def run(self, args: list[str], env: dict[str, str], kill_after: float | None,
            timeout: float) -> tuple[int, str]:
        """One child: its exit status (-9 when killed) and its stdout, then its stderr."""
        assert self.process.stdin is not None and self.process.stdout is not None
        request = {"args": args, "env": env, "out": str(self.out)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        pid = int(json.loads(self.process.stdout.readline())["pid"])
        timers = [threading.Timer(timeout, _kill_pid, (pid,))]
        if kill_after is not None:
            timers.append(threading.Timer(kill_after, _kill_pid, (pid,)))
        for timer in timers:
            timer.start()
        try:
            answer = self.process.stdout.readline()
        finally:
            for timer in timers:
                timer.cancel()
        if not answer:
            raise RuntimeError("the soak's zygote process ended")
        output = self.out.read_text(errors="replace")
        err = Path(f"{self.out}.err")
        return int(json.loads(answer)["status"]), output + (
            err.read_text(errors="replace") if err.exists() else "")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _in_future(when: When) -> bool:
    start = when.start if isinstance(when.start, datetime) else \
        datetime.combine(when.start, datetime.min.time(), tzinfo=UTC)
    return start > datetime.now(UTC) + timedelta(days=1)


def _json(output: str) -> Any:
    """The JSON document the CLI printed (stderr's log lines after it are skipped)."""
    start = min((i for i in (output.find("["), output.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    try:
        return json.JSONDecoder().raw_decode(output[start:])[0]
    except ValueError:
        return None


def _counts(output: str) -> str:
    reports = _json(output)
    if not isinstance(reports, list):
        return ""
    return "; ".join(f"{r.get('account')} {r.get('outcome')} "
                     + ",".join(f"{k}={v}" for k, v in sorted(r.get("counts", {}).items()) if v)
                     for r in reports)


def _writes(output: str) -> int | None:
    """The writes a ``sync --json`` reported in all (None: no report)."""
    reports = _json(output)
    if not isinstance(reports, list):
        return None
    return sum(int(r.get("counts", {}).get(k, 0)) for r in reports for k in WRITES)


def config_text(provider: str, data: Path, accounts: Sequence[Any], invite: bool = False,
                importing: Collection[str] = ()) -> str:
    """syncd's TOML config: the data folder, quiet logs, one ``[[account]]`` per owner
    (the daily deletion budget off; with ``invite``: guests invited, and an hourly e-mail
    cap the soak's compressed hours do not reach: the breaker is
    tests/guests/test_breaker.py's; the owners in ``importing`` import the events made in
    their calendars)."""
    lines = [f'[syncd]\ndata_dir = "{data}"\ndefault_time_zone = "{TZ}"\n'
             f'request_timeout_seconds = {REQUEST_TIMEOUT_SECONDS}\n',
             '[logging]\nlevel = "error"\n']
    for acc in accounts:
        lines.append("[[account]]")
        lines.append(f'name = "{acc.owner.split("@")[0]}"')
        lines.append(f'provider = "{acc.provider}"')
        lines.append(f'owner = "{acc.owner}"')
        lines.append(f'time_zone = "{TZ}"')
        # the soak's rounds compress days into minutes: its owners delete a day's share in
        # an hour, which the daily deletion budget would rightly hold for an admin
        # (tests/engine/test_deletion_budget.py is its test); here every deletion is meant
        lines.append("max_daily_deletion_percent = 100")
        if invite:
            lines.append("invite_guests = true\nmax_guest_updates_per_hour = 1000000")
        if acc.owner in importing:
            lines.append("import_events = true")
        if acc.calendar:
            lines.append(f'calendar = "{acc.calendar}"')
        lines.append("[account.auth]")
        for key, value in acc.auth.items():
            text = value.ref if hasattr(value, "ref") else value
            lines.append(f"{key} = {json.dumps(text)}")
        lines.append("allow_insecure_http = true\n")
    return "\n".join(lines) + "\n"


# ---- the table -----------------------------------------------------------------------

COLUMNS = ("provider", "CRM", "N", "owners", "cycles (first sync + rounds + settle)",
           "kills (failpoint / random)",
           "faults injected", "duplicates", "lost edits", "unexpected deletions", "orphans",
           "leaks", "e-mails", "verify", "wall")


def row(r: Result) -> list[str]:
    faults = ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items()) if v) or \
        ("none" if r.faults_injected else "none (pass-through proxy)")
    f = r.findings
    cycles = f"{r.initial_cycles} + {r.cycles} + {r.settle_cycles}"
    return [r.provider, r.crm, f"{r.n:,}", str(r.owners), cycles,
            f"{r.kills_failpoint} / {r.kills_random}", faults, str(f.duplicates + f.misplaced),
            str(f.lost_edits), str(f.unexpected_deletions), str(f.orphans), str(f.leaks),
            r.mail.cell() if r.mail else str(r.emails),
            "clean" if r.verify_clean else f"{len(r.verify_findings)} finding(s)",
            f"{r.wall_s:.0f} s"]


def markdown(results: Sequence[Result], command: str) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(r)) + " |" for r in results]
    out = [f"`{command}`", "", *lines, ""]
    for r in results:
        if r.code_changed:
            out.append(f"- {r.provider}: NO RESULT: the source changed under the run (its "
                       "children ran two versions); run it again from a checkout nobody "
                       "changes")
        if not r.quiet:
            out.append(f"- {r.provider}: no quiet cycle within the settle limit")
        out += [f"- {r.provider} verify: {v}" for v in r.verify_findings[:20]]
        out += [f"- {r.provider} oracle: {d}" for d in r.findings.details[:40]]
        out += [f"- {r.provider} e-mail oracle: {d}" for d in (r.mail.details if r.mail
                                                               else [])[:40]]
        out.append(f"- {r.provider} changes made: " + ", ".join(
            f"{k} {v}" for k, v in sorted(r.ops.items())) + f"; conflicts recorded "
            f"{r.conflicts}; cycles that failed (faults) {r.failed_cycles}; refused by a "
            f"guard {r.refused}; requests "
            + ", ".join(f"{k} {v}" for k, v in sorted(r.traffic.items()))
            + "; wall " + ", ".join(f"{k} {v:.0f} s" for k, v in r.seconds.items())
            + f"; code {r.code}")
        if r.imports:
            out.append(f"- {r.provider} imports: "
                       + r.imports.format(wrong=r.findings.wrong_imports))
    return "\n".join(out) + "\n"


def run(options: Options) -> Result:
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
        return Soak(options, options.workdir).run()
    with tempfile.TemporaryDirectory(prefix=f"soak-{options.provider}-") as folder:
        return Soak(options, Path(folder)).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--providers", default="caldav,xandikos,google,outlook")
    parser.add_argument("--crm", choices=CRMS, default="builtin",
                        help="the CRM side: syncd's built-in store or the Pipedrive emulator")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--owners", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--ops", type=int, default=0, help="changes per round (default N/40)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--failpoint-kills", type=float, default=0.2)
    parser.add_argument("--random-kills", type=float, default=0.2)
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="start no round after this many minutes (then settle and judge; "
                             "the table counts the rounds run)")
    parser.add_argument("--no-zygote", action="store_true",
                        help="start every syncd child afresh (default: fork them from a "
                             "process that imported syncd, bench/soak_zygote.py)")
    parser.add_argument("--accounts-per-cycle", type=int, default=0,
                        help="accounts each round syncs: those its changes touched, topped up "
                             "at random to this many (default 0: every account)")
    parser.add_argument("--edit-unconfirmed", action="store_true",
                        help="let the user edit events whose create syncd may not have seen "
                             "(the adoption finding in bench/README.md)")
    parser.add_argument("--invite", action="store_true",
                        help="accounts invite guests; the e-mail oracle counts what each "
                             "guest should get (bench/soak_mail.py)")
    parser.add_argument("--import", dest="imports", action="store_true",
                        help="every other account imports events made in its calendar; the "
                             "user makes some (and some not to import); one activity each")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    args = parser.parse_args(argv)
    providers = [p for p in args.providers.split(",") if p]
    unknown = sorted(set(providers) - set(PROVIDERS))
    if unknown:
        parser.error(f"unknown provider(s): {', '.join(unknown)}")
    results = []
    for provider in providers:
        options = Options(provider, n=args.n, crm=args.crm, owners=args.owners, cycles=args.cycles,
                          seed=args.seed, ops=args.ops, failpoint_kills=args.failpoint_kills,
                          random_kills=args.random_kills, faults=not args.no_faults,
                          accounts_per_cycle=args.accounts_per_cycle, zygote=not args.no_zygote,
                          minutes=args.minutes,
                          edit_unconfirmed=args.edit_unconfirmed, invite=args.invite,
                          imports=args.imports,
                          workdir=args.keep / provider if args.keep else None)
        results.append(run(options))
        print(markdown(results[-1:], ""), flush=True)
    command = "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(results, command)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
