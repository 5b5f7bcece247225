"""``syncd run``: the scheduled daemon.

One APScheduler job per account (``max_instances=1`` so an account never runs twice at
once, ``coalesce=True`` so missed runs merge into one, jitter so many accounts do not
fire together). Jobs run on a small worker pool; each account's cycle is isolated by
:meth:`syncd.service.Service.sync_one`. SIGTERM stops scheduling and waits for the
cycles in flight, so no write is cut in half by a deploy.

With no accounts configured, the daemon serves each CRM user's calendar from an
embedded Radicale on 127.0.0.1 and prints the address to add in a calendar app.
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING
from urllib.parse import quote

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from caldav.davclient import DAVClient

from connectors.caldav import DEFAULT_CALENDAR_NAME
from syncd.channels import ChannelKeeper, PushSettings
from syncd.config import AccountConfig, Config
from syncd.config_checks import is_loopback_address
from syncd.crm.builtin.views import UserView
from syncd.crm.source import ChangeWatch, DeletionHints
from syncd.crm_watch import CrmWatcher
from syncd.embedded_accounts import EMBEDDED_CALENDAR, embedded_calendar_url, embedded_url
from syncd.embedded_auth import (
    SERVICE_USER,
    EmbeddedCredentials,
    can_log_in,
    login_name,
    refused_because,
)
from syncd.embedded_server import READY_LINE
from syncd.errors import PortInUse, ServerFailed
from syncd.invariant_check import InvariantCheck
from syncd.logs import setup_logging
from syncd.metrics import Metrics, wrote
from syncd.private import check_private, private_by_default
from syncd.push import AccountDirectory, Hints, PushGate
from syncd.replica import TICK_SECONDS, Dispatcher
from syncd.report import describe, sync_exit_code
from syncd.service import Service
from syncd.store.channels import ChannelStore
from syncd.store.dirty import DirtyFlags
from syncd.store.queue import Claim, WorkQueue
from syncd.text import printable
from syncd.verify_schedule import TICK_SECONDS as VERIFY_TICK
from syncd.verify_schedule import Ticked, VerifySchedule

if TYPE_CHECKING:
    from syncd.http.booking_page import BookingPages
    from syncd.http.receiver import Receiver

log = logging.getLogger("syncd.daemon")
PURGE_INTERVAL = 24 * 3600  # seconds between purges of expired deletions
LIVENESS_TICK = 30  # seconds between checks for notifications that did not come
#: Seconds between two prunes of the provider budgets' rows by one process (each replica
#: prunes; a prune finding nothing is three DELETEs on the tables' keys).
BUDGET_PRUNE_INTERVAL = 60


class EmbeddedCalendarServer:
    """The embedded calendar server: a child process (:mod:`syncd.embedded_server`) serving
    ``data_dir/calendars`` on a loopback port, with a password per user.

    Each CRM user logs in with their e-mail and a generated password and sees only their
    own calendars; syncd syncs every user's calendar as its own service user
    (:mod:`syncd.embedded_auth`). The host option refuses anything but loopback, and the
    child refuses requests whose Host header names another host (DNS rebinding).
    """

    def __init__(self, host: str, port: int, data_path: Path) -> None:
        if not is_loopback_address(host):
            raise ValueError(f"the embedded calendar server only listens on loopback, not {host}")
        self.host, self.port, self.data_path = host, port, data_path
        self.credentials = EmbeddedCredentials(data_path)
        self.process: subprocess.Popen[bytes] | None = None
        self._ready: set[str] = set()  # users whose calendar exists, as far as we know
        self._client: DAVClient | None = None

    @property
    def url(self) -> str:
        return embedded_url(self.host, self.port)

    def start(self, timeout: float = 20.0) -> None:
        if _port_open(self.host, self.port):
            raise PortInUse(what="embedded calendar server", host=self.host, port=self.port,
                            setting="[embedded] port")
        self.credentials.prepare()
        # Radicale's storage root, made here (private, whatever the umask) so its first start
        # does not warn about it.
        for folder in (self.data_path / "calendars", self.data_path / "calendars/collection-root"):
            folder.mkdir(mode=0o700, exist_ok=True)
        # The child says on a pipe that it listens. An open port alone is no proof: another
        # local program may have taken it since the check above, and it would be sent
        # syncd's service password.
        ready_read, ready_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "syncd.embedded_server", "--host", self.host,
                 "--port", str(self.port), "--data-dir", str(self.data_path),
                 "--ready-fd", str(ready_write)],
                stdin=subprocess.DEVNULL,
                pass_fds=(ready_write,),
                preexec_fn=_die_with_parent,
            )
        finally:
            os.close(ready_write)
        try:
            started = _wait_ready(ready_read, time.monotonic() + timeout)
        finally:
            os.close(ready_read)
        if not started:
            self.stop()  # a child that is still starting must not outlive the failure
            raise ServerFailed(what="embedded calendar server", reason="did not start")

    def welcome(self, users: Iterable[UserView], *, show_passwords: bool) -> None:
        """Give each new user a password and a calendar, and tell the terminal how to connect.

        A password is generated and printed (never logged) only when ``show_passwords``
        (standard output is a terminal); otherwise the line says how to set one, since a
        password in a service's captured output would be a password in its logs.
        """
        if not self.running():  # its port may be another program's now (see ensure_calendar)
            return
        for user in users:
            if user.email in self._ready:
                continue
            if not can_log_in(user.email):
                print(f"syncd: {user.email} cannot log in to the embedded calendar server "
                      f"({refused_because(user.email)}); its calendar is not served",
                      flush=True)
                self._ready.add(user.email)
                continue
            calendar = embedded_calendar_url(self.host, self.port, user.email, readable=True)
            if not self.credentials.has_password(user.email):
                if show_passwords:
                    password = self.credentials.new_password(user.email)
                    print(f"syncd: {user.email}: add {calendar} (user name {login_name(user.email)}"
                          f", password {password}; shown once, 'syncd user password "
                          f"{user.email}' sets a new one)", flush=True)
                else:
                    print(f"syncd: {user.email}: calendar {calendar}; run 'syncd user password "
                          f"{user.email}' to give them a password", flush=True)
            try:
                self.ensure_calendar(user.email)
            except Exception as exc:  # the account's cycle reports it; try again next time
                log.warning("could not make the embedded calendar of %s: %s", user.email,
                            describe(exc))
                continue
            self._ready.add(user.email)

    def ensure_calendar(self, email: str) -> None:
        """Make the user's principal and calendar, as the service user, unless they exist.

        Each request is preceded by a check that the child still runs: once it is gone,
        any local program may listen on its port and would be sent the service password
        (the library answers a 401 challenge with it).

        Raises:
            ServerFailed: the server stopped, or refused to look for or make the calendar.
        """
        self.check_running()
        if self._client is None:  # one keep-alive session for every user's check
            self._client = DAVClient(url=self.url, username=SERVICE_USER,
                                     password=self.credentials.service_secret.resolve(),
                                     timeout=30)
        client = self._client
        principal = self.url + quote(login_name(email), safe="") + "/"
        calendar = embedded_calendar_url(self.host, self.port, email)

        def missing(url: str) -> bool:
            self.check_running()
            status = client.request(url, "PROPFIND", "", {"Depth": "0"}).status
            if status not in (207, 404):  # a refusal is not a calendar that exists
                raise ServerFailed(what="embedded calendar server",
                                   reason=f"answered HTTP {status} when looking for "
                                          f"{email}'s calendar")
            return bool(status == 404)

        if not missing(calendar):
            return
        if missing(principal):
            self.check_running()
            client.mkcol(principal, "")
        self.check_running()
        done = client.mkcalendar(calendar, _MKCALENDAR.format(name=DEFAULT_CALENDAR_NAME))
        # Anything but 201 is fine if the calendar is there now (the user's own client may
        # have made it meanwhile).
        if done.status != 201 and missing(calendar):
            raise ServerFailed(what="embedded calendar server",
                               reason=f"answered HTTP {done.status} when making {email}'s "
                                      "calendar")

    def check_running(self) -> None:
        """Raises ServerFailed once the child is gone."""
        if not self.running():
            raise ServerFailed(what="embedded calendar server", reason="it stopped")

    def running(self) -> bool:
        """Whether the child process still runs (once it is gone, its port is anyone's)."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


_MKCALENDAR = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
    "<D:displayname>{name}</D:displayname></D:prop></D:set></C:mkcalendar>"
)


def _die_with_parent() -> None:
    """In the child: have Linux end it when the daemon dies, even by SIGKILL, so a
    crashed daemon never leaves a calendar server holding the port."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wait_ready(fd: int, deadline: float) -> bool:
    """Whether the child wrote its ready line on ``fd`` before ``deadline`` (end of file:
    it exited without listening)."""
    received = b""
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([fd], [], [], left)
        if not readable:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            return False
        received += chunk
        if b"\n" in received:
            return received.startswith(READY_LINE)
    return False


def _port_open(host: str, port: int) -> bool:
    try:  # by name, so that ::1 is tried over IPv6
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Daemon:
    """The scheduler around a :class:`Service`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.service = Service(config)
        self.stopping = threading.Event()
        self._signal: int | None = None  # set by the signal handler, read by run()
        # Cycles in flight, so that shutdown can wait for them, but not for ever.
        self._in_flight = 0
        self._settled = threading.Condition()
        self.embedded: EmbeddedCalendarServer | None = None
        self.receiver: Receiver | None = None
        self.crm_watch: tuple[CrmWatcher, Hints] | None = None
        self.push = PushGate(DirtyFlags(self.service.db), self._run_soon)
        self.metrics = Metrics(self.service.accounts, self.service.db)  # on /metrics
        # The state's invariants, at start and after each cycle that wrote.
        self.invariants = InvariantCheck(self.service.db, self.metrics.invariant_broken)
        # The read-only audit of each account every verify_hours (0: none).
        self.verifier = VerifySchedule(self.service, timedelta(hours=config.verify_hours)) \
            if config.verify_hours else None
        self._pushed: dict[str, datetime] = {}  # the run time a push gave each account's job
        # Push channels: opened and renewed after each cycle (Service.sync_one), checked
        # for liveness by a tick, stopped when their account goes.
        self.keeper = ChannelKeeper(
            ChannelStore(self.service.db),
            PushSettings(config.http.public_url,
                         backstop=timedelta(minutes=config.push.backstop_minutes),
                         liveness=timedelta(seconds=config.push.liveness_seconds)),
            owner=self.service.replica)
        # Accounts stop_serving let go: a cycle of theirs still running when it did may
        # have opened a channel after it looked, so the cycle's end looks again.
        self._gone: set[str] = set()
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(config.workers)},
            job_defaults={"max_instances": 1, "coalesce": True},
            timezone="UTC",
        )
        # As a replica (``[syncd] replica``), accounts come from the database's work queue
        # and one tick job claims them, instead of a job per account.
        self.queue: WorkQueue | None = None
        self.dispatcher: Dispatcher | None = None
        if config.replica:
            self.queue = WorkQueue(self.service.db, self.service.replica)
            self.dispatcher = Dispatcher(
                self.queue, lambda: [a.name for a in self.service.accounts()],
                lambda claim: self._run_account(claim.name, claim),
                cap=config.workers, ttl=timedelta(seconds=config.lease_seconds),
                on_free=self._claim_soon)

    def _claim_soon(self) -> None:
        """Claim now for slots that cycles just freed while accounts may wait (see
        Dispatcher), once the daemon runs (tests drive the ticks by hand)."""
        if self.dispatcher is not None and self.scheduler.running and \
                not self.stopping.is_set():
            try:
                self.dispatcher.refill()
            except Exception as exc:  # the database is away: the next tick tries again
                log.warning("could not claim accounts: %s", describe(exc))

    def _interval(self, account: AccountConfig, *, pushed: bool = False) -> int:
        """Seconds between the account's polls; ``pushed``: its channel is healthy, so
        the poll is only the backstop for notifications lost on the way."""
        normal = account.interval_seconds or self.config.interval_seconds
        return max(normal, self.config.push.backstop_minutes * 60) if pushed else normal

    def _pace(self, account: AccountConfig) -> None:
        """Poll the account at the backstop while its channel is healthy, at its normal
        interval otherwise; a run already due sooner (a push's) keeps its time."""
        job = self.scheduler.get_job(f"account:{account.name}")
        if job is None:  # (a replica's accounts go back to the queue with their pace)
            return
        pushed = self._pushed_ok(account)
        seconds = self._interval(account, pushed=pushed)
        if getattr(job.trigger, "interval", None) == timedelta(seconds=seconds):
            return
        before = job.next_run_time
        job.reschedule("interval", seconds=seconds, jitter=self.config.jitter_seconds)
        job = self.scheduler.get_job(job.id)
        if job is not None and before is not None and job.next_run_time is not None \
                and before < job.next_run_time:
            job.modify(next_run_time=before)
        log.info("polling %s every %d s (%s)", account.name, seconds,
                 "its push channel is healthy" if pushed else "no healthy push channel")

    def _pushed_ok(self, account: AccountConfig) -> bool:
        """Whether the account's push channel is healthy (False when that cannot be read:
        polled at the normal interval until it can)."""
        try:
            return self.keeper.healthy(account.name)
        except Exception:
            log.debug("could not read the push channel of %s", account.name, exc_info=True)
            return False

    def check_liveness(self) -> list[str]:
        """The liveness tick: channels whose expected notification did not come are
        degraded, their accounts polled at the normal interval and synced soon (that
        cycle re-creates the channel). Returns those accounts."""
        try:
            missed = self.keeper.missed()
        except Exception as exc:  # the database is away: the next tick tries again
            log.warning("could not check the push channels' liveness: %s", describe(exc))
            return []
        served = {a.name: a for a in self.service.accounts()}
        for name in missed:
            account = served.get(name)
            if account is not None:
                self._pace(account)
                self._run_soon(name, time.time())
        return missed

    def start_push(self) -> None:
        """Cycles look after their account's push channel from now on; the channels of
        accounts no longer configured are forgotten (their connectors cannot be made any
        more, so they expire by themselves)."""
        self.service.keeper = self.keeper
        # A team's members come from the CRM, which may not answer now (an outage must
        # not look like everyone leaving): their rows wait, and refresh_jobs stops the
        # channel of a member who leaves while the daemon runs.
        self.keeper.prune((a.name for a in self.service.accounts()),
                          spare=tuple(f"{team.name}:" for team in self.config.teams))

    def stop_serving(self, name: str) -> None:
        """This daemon no longer syncs the account (gone from the config, or handed to
        another replica): no more cycles, and its push channel is stopped and removed."""
        self._gone.add(name)
        job = self.scheduler.get_job(f"account:{name}")
        if job is not None:
            job.remove()
        self.service.forget_push(name)

    def _run_account(self, name: str, claim: Claim | None = None) -> None:
        """One cycle of the account; ``claim``: it was claimed from the work queue, under
        that lease, and goes back to the queue with its next due time."""
        if self.stopping.is_set() or (
                self.embedded is not None and not self.embedded.running()):
            # (a dead embedded server's port may be another program's now; the main loop
            # stops the daemon)
            self._give_back(claim, 0)
            return
        for account in self.service.accounts():
            if account.name == name:
                # Counted out only after the cycle's own aftermath (its re-pace
                # included): shutdown waits for all of it, not just the sync.
                with self._counted() as counted:
                    if counted:
                        self._cycle(account, claim)
                    else:
                        self._give_back(claim, 0)
                return
        self._give_back(claim, self.config.interval_seconds)  # no longer configured here

    @contextmanager
    def _counted(self) -> Iterator[bool]:
        """Count work in flight while it runs, so that shutdown waits for it; False (and
        nothing counted) once the daemon stops."""
        with self._settled:
            # Checked again under the lock shutdown waits with: work either counts as in
            # flight before shutdown looks, or does not start.
            counted = not self.stopping.is_set()
            if counted:
                self._in_flight += 1
        try:
            yield counted
        finally:
            if counted:
                with self._settled:
                    self._in_flight -= 1
                    self._settled.notify_all()

    def verify_due(self) -> list[Ticked]:
        """The scheduled audit's tick (:mod:`syncd.verify_schedule`): the accounts due an
        audit read, read-only, each under its lease; counted in flight as a cycle is."""
        if self.verifier is None or (self.embedded is not None and not self.embedded.running()):
            return []
        with self._counted() as counted:
            if not counted:
                return []
            try:
                return self.verifier.tick(self.stopping.is_set)
            except Exception as exc:  # the database is away: the next tick tries again
                log.warning("the scheduled audit failed: %s", describe(exc))
                return []

    def _cycle(self, account: AccountConfig, claim: Claim | None) -> None:
        """The cycle of :meth:`_run_account`, counted in flight, and what follows it."""
        name = account.name
        flagged = self.push.begin(name, seen=(claim.dirty_at,) if claim is not None else None)
        held = False  # another replica holds the account: this cycle read nothing
        started = time.monotonic()
        try:
            report = self.service.sync_one(
                account, claimed=claim.token if claim is not None else None)
            held = report.outcome == "busy"
        finally:
            # Given back before the push gate looks: a hint that came during the cycle
            # makes it due sooner than this.
            self._give_back(claim, self._interval(account, pushed=self._pushed_ok(account)))
            self.push.end(name, unread=flagged if held else None)
        self.metrics.cycle_done(account, report, time.monotonic() - started)
        if wrote(report):
            self._check_invariants(name)
        if flagged is not None and not held:
            self.metrics.pushed(flagged)
        if name in self._gone:  # let go while this cycle ran
            self.service.forget_push(name, account)
        elif not held and claim is None and not self.stopping.is_set():
            self._pace(account)
        levels = {"ok": logging.INFO, "skipped": logging.INFO, "busy": logging.DEBUG}
        level = levels.get(report.outcome, logging.WARNING)
        if log.isEnabledFor(level):  # (the line is built only when it is kept)
            log.log(level, "%s", report.line())

    def _check_invariants(self, name: str) -> None:
        """After a cycle that wrote: the account's own invariants (one statement)."""
        try:
            self.invariants.after_cycle(name)
        except Exception as exc:  # the database is away: the next cycle that writes checks
            log.warning("could not check the sync state of %s: %s", name, describe(exc))

    def _give_back(self, claim: Claim | None, seconds: float) -> None:
        """Return a claimed account to the work queue, due in ``seconds`` (plus jitter)."""
        if claim is not None and self.queue is not None:
            self.queue.finish(claim.name, claim.token, seconds,
                              jitter=self.config.jitter_seconds if seconds else 0)

    def _run_soon(self, name: str, when: float) -> None:
        """Run the account's next cycle at ``when`` (epoch seconds): earlier than its
        regular run, or moved again while a burst goes on (PushGate)."""
        if self.queue is not None:  # whichever replica claims it next runs it
            self.queue.due_by(name, datetime.fromtimestamp(when, UTC))
            return
        job = self.scheduler.get_job(f"account:{name}")
        if job is None:  # not scheduled yet: its first cycle runs as soon as it is
            return
        at = datetime.fromtimestamp(when, UTC)
        current = job.next_run_time
        if current is None or current > at or self._pushed.get(name) == current:
            job.modify(next_run_time=at)
            self._pushed[name] = at

    def start_receiver(self) -> None:
        """The HTTP receiver, when ``[http] listen`` is set (raises PortInUse if taken)."""
        if self.config.http.listen is None:
            return
        from syncd.http.basic_auth import USER
        from syncd.http.ops import DatabaseProbe, Ops, metrics_secret
        from syncd.http.receiver import Receiver

        secret = metrics_secret(self.config.data_path)
        ops = Ops(self.metrics, secret, alive=lambda: bool(self.scheduler.running),
                  stopping=lambda: self._signal is not None or self.stopping.is_set(),
                  probe=DatabaseProbe(self.service.db.ping))
        source = self.service.source
        receiver = Receiver(self.config, self._directory(), self.push.dirty, self.push.nudge,
                            deleted=source.deletions_hinted
                            if isinstance(source, DeletionHints) else None, ops=ops,
                            channels=self.keeper.channels, booking=self._booking_pages())
        receiver.start()
        self.receiver = receiver
        self.metrics.seed(self.service.state)
        self.metrics.start()
        public = self.config.http.public_url
        print(f"syncd: HTTP receiver on {receiver.url}"
              + (f" (providers call {public})" if public else ""), flush=True)
        print(f"syncd: {receiver.url}/metrics asks for user {USER} and the password in "
              f"{secret.path}", flush=True)

    def _booking_pages(self) -> BookingPages:
        """``/book/<token>`` over the service's CRM and the owners' availability (working
        hours, busy activities and every calendar of theirs)."""
        from syncd.availability_service import Availability
        from syncd.booking import Bookings
        from syncd.http.booking_guard import Signer, load_key
        from syncd.http.booking_page import BookingPages
        from syncd.store.booking_links import BookingLinkStore

        source = self.service.source
        availability = Availability(self.service)
        return BookingPages(BookingLinkStore(self.service.db),
                            Bookings(source, availability.owner_free_slots,
                                     buffers=availability.owner_buffers),
                            Signer(load_key(self.config.data_path)))

    def _directory(self) -> AccountDirectory:
        def user_id(email: str) -> int | None:
            user = self.service.source.user(email)
            return user.id if user is not None else None

        return AccountDirectory(self.service.accounts, user_id)

    def start_crm_watch(self) -> None:
        """CRM -> calendar push for a CRM syncd watches itself (the built-in store): its
        change feed looked at every second, the changed owners' accounts flagged."""
        source = self.service.source
        if not isinstance(source, ChangeWatch):
            return  # a remote CRM calls a webhook instead
        hints = Hints(self._directory(), self.push.dirty, self.push.nudge)
        watcher = CrmWatcher(source, hints.crm_users_changed)
        hints.start()
        watcher.start()
        self.crm_watch = watcher, hints
        self.metrics.watch_hooks(lambda: {"crm_watch": watcher, "crm_watch_hints": hints})

    def stop_crm_watch(self) -> None:
        """No more looks, then the hints already given are handled and the thread ends."""
        if self.crm_watch is None:
            return
        watcher, hints = self.crm_watch
        self.crm_watch = None
        watcher.stop()
        hints.stop()
        counts = {**{f"watch {k}": v for k, v in watcher.counts.items()},
                  **{f"hints {k}": v for k, v in hints.counts.items()}}
        log.info("CRM watch stopped: %s", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    def purge(self) -> None:
        """Purge the activities deleted longer ago than ``retention_days`` (daily job)."""
        from syncd.admin import purge_expired

        try:
            ids = purge_expired(self.service.store, self.service.state,
                                self.config.retention_days)
        except Exception as exc:  # a failed purge is retried tomorrow; syncing goes on
            log.warning("purging deleted activities failed: %s", describe(exc))
            log.debug("purge failure", exc_info=True)  # the traceback, for --debug only
            return
        if ids:
            log.info("purged %d activities deleted over %d days ago", len(ids),
                     self.config.retention_days)

    def prune_budgets(self) -> None:
        """Delete the provider budgets' rows no limit needs any more (every
        :data:`BUDGET_PRUNE_INTERVAL` seconds; see :meth:`Service.prune_budgets`)."""
        try:
            gone = self.service.prune_budgets()
        except Exception as exc:  # the rows wait for the next prune; syncing goes on
            log.warning("pruning the provider budgets failed: %s", describe(exc))
            return
        if gone:
            log.debug("pruned %d provider budget rows", gone)

    def _welcome_users(self) -> None:
        if self.embedded is not None:
            self.embedded.welcome(self.service.store.list_users(),
                                  show_passwords=sys.stdout.isatty())

    def refresh_jobs(self) -> None:
        """One job per account; in embedded mode new CRM users get theirs within a cycle.
        (A replica has none: its tick claims accounts from the work queue.)"""
        self._welcome_users()
        if self.dispatcher is not None:
            return
        wanted = {a.name: a for a in self.service.accounts()}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("account:") and job.id[8:] not in wanted:
                self.stop_serving(job.id[8:])
        for name, account in wanted.items():
            job_id = f"account:{name}"
            if self.scheduler.get_job(job_id) is None:
                self._gone.discard(name)
                interval = self._interval(account)
                self.scheduler.add_job(
                    self._run_account, "interval", args=[name], id=job_id,
                    seconds=interval, jitter=self.config.jitter_seconds,
                    misfire_grace_time=interval, next_run_time=_now(),
                )
                log.info("scheduled %s every %d s", name, interval)

    def run(self, once: bool = False) -> int:
        embedded = None
        if not self.config.serves_accounts:
            embedded = EmbeddedCalendarServer(self.config.embedded_host, self.config.embedded_port,
                                              self.config.data_path)
            embedded.start()
            self.embedded = embedded
            # A cycle in flight when the child dies must not reconnect to its port.
            self.service.before_request = embedded.check_running
            print(f"syncd: calendar server on {embedded.url}", flush=True)
            print(f"syncd: in Thunderbird, Apple Calendar or DAVx5 add {embedded.url}<your e-mail>"
                  f"/{EMBEDDED_CALENDAR}/ with your e-mail as user name and the password syncd "
                  "showed when it added you ('syncd user password EMAIL' sets a new one)",
                  flush=True)
            self._welcome_users()
        try:
            if once:
                reports = self.service.sync_all()
                for r in reports:
                    print(printable(r.line()), flush=True)
                return sync_exit_code(reports)
            self.invariants.at_start()  # (refuses to start on a schema not this release's)
            self._install_signals()
            self.start_push()
            self.start_receiver()
            self.start_crm_watch()
            self.scheduler.start()
            self.refresh_jobs()
            if self.dispatcher is not None:
                self.scheduler.add_job(self.dispatcher.tick, "interval", seconds=TICK_SECONDS,
                                       id="claim", next_run_time=_now())
            self.scheduler.add_job(self.check_liveness, "interval", seconds=LIVENESS_TICK,
                                   id="liveness")
            self.scheduler.add_job(self.refresh_jobs, "interval",
                                   seconds=self.config.interval_seconds, id="refresh")
            self.scheduler.add_job(self.purge, "interval", seconds=PURGE_INTERVAL,
                                   id="purge", next_run_time=_now())
            self.scheduler.add_job(self.prune_budgets, "interval",
                                   seconds=BUDGET_PRUNE_INTERVAL, id="budgets")
            if self.verifier is not None:
                self.scheduler.add_job(self.verify_due, "interval", seconds=VERIFY_TICK,
                                       id="verify")
            print(f"syncd: running; data in {self.config.data_path}", flush=True)
            server_died = False
            while self._signal is None:
                if embedded is not None and not embedded.running():
                    server_died = True
                    break
                time.sleep(0.5)
            if server_died:
                assert embedded is not None and embedded.process is not None
                log.error("the embedded calendar server stopped (exit code %s); syncd stops "
                          "too, so that no cycle sends its password to whatever listens on "
                          "port %d now. Start syncd again (its messages above say why the "
                          "server ended).", embedded.process.returncode, embedded.port)
            else:
                log.info("received signal %d; stopping: waiting for cycles in flight",
                         self._signal)
            if self.receiver is not None:  # no new hints while the cycles settle
                self.receiver.stop()
            self.stop_crm_watch()
            if not self.stop_cycles(self.config.shutdown_grace_seconds):
                self._abandon(1 if server_died else 0)
            return 1 if server_died else 0
        finally:
            self.metrics.stop()
            if self.receiver is not None:
                self.receiver.stop()
            self.stop_crm_watch()
            if embedded is not None:
                embedded.stop()
            self.service.close()

    def stop_cycles(self, grace: float) -> bool:
        """Start no more cycles and wait up to ``grace`` seconds for those in flight;
        False when some are still running then.

        The scheduler is shut down without waiting for its jobs: a cycle ending re-paces
        its account through the scheduler (``get_job``), and APScheduler's waiting
        shutdown holds the job-store lock that call needs while it waits for that very
        cycle, so the two would wait for each other for ever. Cycles are waited for here
        instead, with the lock free.
        """
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.dispatcher is not None:
            self.dispatcher.stop()
        return self._wait_for_cycles(grace)

    def _wait_for_cycles(self, seconds: float) -> bool:
        """Wait until no cycle is in flight; False when ``seconds`` pass first."""
        with self._settled:
            return self._settled.wait_for(lambda: self._in_flight == 0, timeout=seconds)

    def _abandon(self, code: int = 0) -> None:
        """Exit now, leaving cycles that did not finish within the grace period.

        A cycle stuck past the grace period must not hold the process: the state store is
        crash-safe (intents before requests, cursors after the writes they cover), so the
        next start resumes such a cycle the way it resumes after a SIGKILL. The embedded
        calendar server and the reader processes end with this process.
        """
        log.warning("stopping: %d cycle(s) still running after %d s; exiting without them "
                    "(the next start resumes them)", self._in_flight,
                    self.config.shutdown_grace_seconds)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)

    def _install_signals(self) -> None:
        # The handler only stores the signal: it runs in the main thread between any two
        # bytecodes, and taking a lock there (an Event's, a log handler's) can deadlock
        # against the same thread holding it.
        def stop(signum: int, _frame: FrameType | None) -> None:
            self._signal = signum

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)


def _now() -> datetime:
    return datetime.now(UTC)


def run_daemon(config: Config, *, once: bool = False) -> int:
    private_by_default()
    setup_logging(config.logging.level, config.logging.format, config.logging.file)
    config.data_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private(config)
    return Daemon(config).run(once=once)
