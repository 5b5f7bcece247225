"""The repository over syncd's state tables; the engine's only way to its own state."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, bindparam, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from syncd.errors import AccountUnavailable, LeaseLost, NotFound
from syncd.model import Projection
from syncd.pairs import Conflict, SyncPair
from syncd.store.base import utcnow
from syncd.store.db import Database
from syncd.store.state_tables import (
    SyncAccount,
    SyncConflict,
    SyncDeletion,
    SyncLink,
    SyncMeeting,
    SyncQuarantine,
    SyncWrite,
)
from syncd.store.status import AccountStatus, CycleEnd, after_cycle, unavailable

#: A write that fails this many cycles in a row is quarantined (failure mode 16).
MAX_ATTEMPTS = 5
#: The quarantine state of an item an admin released with ``syncd quarantine retry``.
RETRY = "retry"


@dataclass(frozen=True)
class AccountState:
    """A snapshot of one account's row."""

    name: str
    status: str
    status_reason: str | None
    cooldown_until: datetime | None
    fingerprint: str | None
    crm_cursor: str | None
    calendar_cursor: str | None
    window_end: datetime | None
    initial_done: bool
    failures: int
    last_run_at: datetime | None
    last_outcome: str | None
    last_counts: Mapping[str, Any] | None
    last_message: str | None
    guest_window_start: datetime | None
    guest_window_count: int
    lease_owner: str | None
    lease_until: datetime | None
    lease_token: int
    auth_fingerprint: str | None = None
    due_at: datetime | None = None  # the work queue's next cycle (None: due now)
    takeovers: int = 0  # leases taken from a holder that never gave them back
    quota_cooldowns: int = 0  # usage limits met in a row (syncd.store.status)
    # the daily deletion budget: since when deletions wait for an admin (None: they do
    # not), and when an admin last let them through (earlier deletions do not count)
    deletions_held_since: datetime | None = None
    deletions_allowed_at: datetime | None = None
    # the write log's first create that no committed calendar listing showed (None: none)
    creates_unlisted_from: int | None = None

@dataclass(frozen=True)
class CycleStart:
    """What :meth:`StateStore.begin_cycle` found: the account's state, and the lease's
    fencing token, or why there is none (``unavailable``; neither: another replica
    holds the lease)."""

    state: AccountState
    token: int | None
    unavailable: AccountUnavailable | None



@dataclass(frozen=True)
class HeldItems:
    """An account's items held back: given up on (with the version that failed), and
    released by an admin for one more try (``syncd quarantine retry``)."""

    quarantined: dict[str, str | None]
    retry: list[str]


def lease_owner_id() -> str:
    """Who holds a lease: this host and process, so a dead local holder can be recognised."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` names a process on this host that no longer exists."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's replica: only its TTL can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def db_clock(session: Session | Connection, now: datetime | None = None) -> Any:
    """The clock leases run on: PostgreSQL's ``now()``, so that replicas whose clocks
    disagree still agree on when a lease expires; SQLite serves one process, whose clock
    (``now``, for tests) is the only one."""
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        return func.now()
    return now or utcnow()


def taken_over(owner: str) -> Any:
    """1 when a take finds the lease held by someone else (who never released it: a
    crashed or paused replica), else 0; added to ``takeovers`` in the same UPDATE."""
    return case((and_(SyncAccount.lease_owner.is_not(None), SyncAccount.lease_owner != owner),
                 1), else_=0)


#: Unrecorded updates a link keeps (the newest): only a pair whose writes fail or die
#: cycle after cycle, its CRM side changing each time, reaches it.
SENT_KEPT = 16


def _sent_updates(value: list[dict[str, Any]] | None) -> tuple[dict[str, Any], ...]:
    """A link's ``sent`` column as its updates, oldest first."""
    return tuple(dict(update) for update in value) if value else ()


def _with_update(sent: tuple[dict[str, Any], ...], fields: dict[str, Any]
                 ) -> list[dict[str, Any]]:
    """``sent`` with one more update: after the others, never in their place, since any
    of them may have landed (a retry of the same update is kept once)."""
    kept = [update for update in sent if update != fields]
    return [*kept, fields][-SENT_KEPT:]


def _sent_now(s: Session, account: str, ids: Sequence[int]
              ) -> dict[int, tuple[dict[str, Any], ...]]:
    """The ``sent`` each of these links holds now (none: absent)."""
    found: dict[int, tuple[dict[str, Any], ...]] = {}
    for start in range(0, len(ids), _IN_SLICE):
        rows = s.execute(select(SyncLink.activity_id, SyncLink.sent).where(
            SyncLink.account == account, SyncLink.activity_id.in_(ids[start:start + _IN_SLICE]),
            SyncLink.sent.is_not(None)))
        found.update({activity_id: _sent_updates(sent) for activity_id, sent in rows if sent})
    return found


def _fenced(session: Session, name: str, token: int) -> bool:
    """Lock the account's row for this transaction and tell whether ``token`` is still its
    lease: a write recorded under it is then one no other replica can race."""
    held = session.scalar(select(SyncAccount.lease_token).where(SyncAccount.name == name)
                          .with_for_update())
    return held == token


def _snapshot(row: SyncAccount) -> AccountState:
    return AccountState(**{f: getattr(row, f) for f in AccountState.__dataclass_fields__})


#: The columns of an :class:`AccountState`, in its order: read (or returned) as a plain
#: row, which costs a fraction of loading the mapped object.
_STATE_COLUMNS = tuple(getattr(SyncAccount, f) for f in AccountState.__dataclass_fields__)

# The statements every cycle runs, built once on the tables (not the mapped classes):
# building and caching a statement anew each time cost more CPU than its round trip.
_ACCOUNTS, _LINKS, _QUARANTINE = (cast(Table, SyncAccount.__table__),
                                  cast(Table, SyncLink.__table__),
                                  cast(Table, SyncQuarantine.__table__))
_ACCOUNT_ROW = select(*(_ACCOUNTS.c[c.key] for c in _STATE_COLUMNS)).where(
    _ACCOUNTS.c.name == bindparam("name"))
_HELD_ITEMS = (select(_QUARANTINE.c.item_key, _QUARANTINE.c.state, _QUARANTINE.c.version)
               .where(_QUARANTINE.c.account == bindparam("account"),
                      _QUARANTINE.c.state.in_(("quarantined", RETRY)))
               .order_by(_QUARANTINE.c.id))
_PENDING_LINKS = select(_LINKS).where(_LINKS.c.account == bindparam("account"),
                                      _LINKS.c.pending.is_(True))


@cache
def _end_of_cycle(columns: tuple[str, ...], *, fenced: bool) -> Any:
    """The UPDATE that records a cycle's end in ``columns`` (a handful of sets, one per
    kind of ending), built once: building it anew cost more CPU than its round trip.
    ``fenced``: only while the lease's token is still ``b_token``."""
    # (parameters named apart from the columns, which an UPDATE's SET would claim)
    where = [_ACCOUNTS.c.name == bindparam("b_name")]
    if fenced:
        where.append(_ACCOUNTS.c.lease_token == bindparam("b_token"))
    return update(_ACCOUNTS).where(*where).values(
        {column: bindparam(f"v_{column}", type_=_ACCOUNTS.c[column].type)
         for column in columns})


def _first_create_after(account: str, write_id: int) -> Any:
    """The account's first create in the write log after ``write_id`` (NULL: none), as a
    value an UPDATE sets."""
    return (select(func.min(SyncWrite.id))
            .where(SyncWrite.account == account, SyncWrite.op == "create",
                   SyncWrite.id > write_id)
            .scalar_subquery())


def _base(data: Mapping[str, Any] | None) -> Projection | None:
    return Projection.from_json(data) if data else None


def _link(row: Any) -> SyncPair:
    """A link from its row (mapped or plain: the attributes are the columns')."""
    return SyncPair(row.activity_id, row.sync_uid, row.event_id, row.etag, _base(row.crm_base),
                _base(row.cal_base), row.generation, row.pending,
                frozenset(row.invited) if row.invited is not None else None, row.organizer,
                _sent_updates(row.sent))


_IN_SLICE = 500  # values per IN (...) list


def _conflict(c: SyncConflict) -> dict[str, Any]:
    return {"id": c.id, "account": c.account, "activity_id": c.activity_id,
            "event_id": c.event_id, "field": c.field, "crm_value": c.crm_value,
            "calendar_value": c.calendar_value, "winner": c.winner, "policy": c.policy,
            "at": c.at, "resolved": c.resolved}


def _new_conflicts(session: Session, account: str,
                   conflicts: Iterable[tuple[int | None, str | None, Conflict]]
                   ) -> list[tuple[int | None, str | None, Conflict]]:
    """The conflicts not already open with the same values: a conflict is recorded before
    the write that settles it and again when its pair finishes, and a pair whose write
    failed meets the same conflict at its next cycle."""
    def key(activity_id: int | None, field: str, crm: Any, cal: Any, winner: str) -> str:
        return json.dumps([activity_id, field, crm, cal, winner], sort_keys=True, default=str)

    wanted = list(conflicts)
    ids = sorted({a for a, _, _ in wanted if a is not None})
    known: set[str] = set()
    for start in range(0, len(ids), _IN_SLICE):
        rows = session.scalars(select(SyncConflict).where(
            SyncConflict.account == account, SyncConflict.resolved.is_(False),
            SyncConflict.activity_id.in_(ids[start:start + _IN_SLICE])))
        known.update(key(r.activity_id, r.field, r.crm_value, r.calendar_value, r.winner)
                     for r in rows)
    fresh = []
    for activity_id, event_id, c in wanted:
        k = key(activity_id, c.field, c.crm_value, c.calendar_value, c.winner)
        if k not in known:
            known.add(k)
            fresh.append((activity_id, event_id, c))
    return fresh


def _uid_hash(ical_uid: str) -> str:
    return hashlib.sha256(ical_uid.encode("utf-8", "surrogatepass")).hexdigest()


def _claim(session: Session, claims: Iterable[tuple[str, str, int | None]]) -> None:
    """Insert (ical_uid, account, activity_id) claims; a UID already held stays as it is."""
    now = utcnow()
    by_hash = {_uid_hash(uid): (uid, account, activity_id)
               for uid, account, activity_id in claims}
    rows = [{"uid_hash": key, "ical_uid": uid, "account": account,
             "activity_id": activity_id, "at": now}
            for key, (uid, account, activity_id) in by_hash.items()]
    if not rows:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    # One statement with a parameter list: compiled once and cached, unlike a VALUES list
    # whose length changes from batch to batch.
    session.execute(insert(SyncMeeting).on_conflict_do_nothing(index_elements=["uid_hash"]),
                    rows)


class StateStore:
    """Accounts, links, conflicts and quarantine, each call its own transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- accounts ----------------------------------------------------------------------

    def account(self, name: str) -> AccountState:
        """The account's state, created on first use."""
        with self.db.read() as conn:
            found = conn.execute(_ACCOUNT_ROW, {"name": name}).first()
        if found is not None:
            return AccountState(*found)
        with self.db.session() as s:
            row = s.get(SyncAccount, name)
            if row is not None:  # made meanwhile by another thread
                return _snapshot(row)
            row = SyncAccount(name=name, status="ok", crm_cursor=None, initial_done=False,
                              failures=0, guest_window_count=0, lease_token=0)
            s.add(row)
            s.flush()
            return _snapshot(row)

    def accounts(self) -> list[AccountState]:
        with self.db.session() as s:
            return [_snapshot(r) for r in s.scalars(select(SyncAccount).order_by(SyncAccount.name))]

    def update_account(self, name: str, **values: Any) -> None:
        """Write columns of the account's row as given (tools and tests; the status
        columns move through the status machine's methods below)."""
        with self.db.session() as s:
            s.execute(update(SyncAccount).where(SyncAccount.name == name).values(**values))

    # --- the status machine (syncd.store.status) ------------------------------------------

    def begin_cycle(self, name: str, owner: str, ttl: timedelta, now: datetime, *,
                    force: bool = False, claimed: int | None = None,
                    known: AccountState | None = None) -> CycleStart:
        """Start a cycle: the account's state, and the lease unless the account may not
        sync now (``unavailable``) or another replica holds it (no ``token``).
        ``claimed``: the lease's token, already taken from the work queue
        (:mod:`syncd.store.queue`). ``known``: the account's row, read by the caller
        just before (so a cycle reads it once, not once per layer)."""
        before = known or self.account(name)
        refused = unavailable(name, before, now, force=force)
        if refused is not None:
            return CycleStart(before, None, refused)
        if claimed is not None:
            return CycleStart(before, claimed, None)
        # The row as the take left it: read under the lease, so no other holder's cycle
        # can have moved its cursors since.
        taken = self._take_lease(name, owner, ttl, now, before.lease_owner)
        return CycleStart(before, None, None) if taken is None else \
            CycleStart(taken, taken.lease_token, None)

    def finish_cycle(self, name: str, token: int | None, end: CycleEnd, now: datetime,
                     before: AccountState) -> None:
        """Record how a cycle ended (the status machine's move from ``before``, the
        state the cycle began with) and release its lease, in one transaction.
        ``token`` None: no lease was taken. A holder whose lease was taken over meanwhile
        writes nothing: the account's row is its new holder's."""
        values = after_cycle(before, end, now)
        if token is not None:
            values = {**values, "lease_owner": None, "lease_until": None}
        if not values:
            return
        stmt = _end_of_cycle(tuple(sorted(values)), fenced=token is not None)
        params = {f"v_{key}": value for key, value in values.items()}
        params["b_name"] = name
        if token is not None:
            params["b_token"] = token
        with self.db.single() as conn:  # one statement: atomic without a transaction
            conn.execute(stmt, params)

    def credentials_changed(self, name: str) -> None:
        """An account waiting for re-authorisation whose credentials changed tries
        again: fixing the secret is the whole fix."""
        self._move(name, [AccountStatus.NEEDS_REAUTH], status=AccountStatus.OK,
                   status_reason=None, auth_fingerprint=None)

    def credentials_refused(self, name: str, fingerprint: str | None) -> None:
        """Remember which credentials an account waiting for re-authorisation was
        refused with (a salted hash, never the secret)."""
        self._move(name, [AccountStatus.NEEDS_REAUTH], auth_fingerprint=fingerprint)

    def signed_in(self, name: str) -> None:
        """A person signed the account in again (``syncd auth``): an account waiting
        for that, or failing, syncs on its next cycle. Paused and flagged accounts stay
        so: their cause is not the credentials."""
        self.account(name)
        self._move(name, [AccountStatus.NEEDS_REAUTH, AccountStatus.FAILING],
                   status=AccountStatus.OK, status_reason=None, failures=0)

    def pause(self, name: str, reason: str) -> None:
        """Hold the account until an admin resumes it (``reason``: why, kept in the
        status): its sync state breaks an invariant (syncd.invariant_check)."""
        self.account(name)
        self.update_account(name, status=AccountStatus.PAUSED, status_reason=reason)

    def resume(self, name: str) -> AccountStatus:
        """An admin lets the account sync again, whatever held it; returns the status
        it had. A guard trips again unless its cause was fixed."""
        before = AccountStatus(self.account(name).status)
        self.update_account(name, status=AccountStatus.OK, status_reason=None,
                            cooldown_until=None, failures=0, guest_window_count=0,
                            quota_cooldowns=0)
        return before

    def _move(self, name: str, when: list[AccountStatus], **values: Any) -> None:
        """Write ``values`` if the account is in one of the ``when`` states."""
        with self.db.session() as s:
            s.execute(update(SyncAccount).where(SyncAccount.name == name,
                                                SyncAccount.status.in_(when)).values(**values))

    def record_guest_emails(self, name: str, start: datetime, count: int, *,
                            token: int | None = None) -> None:
        """The hour's guest e-mail window: when it started and how many were sent.

        ``token``: the cycle's lease (fencing, as :meth:`record`); raises LeaseLost,
        writing nothing, when another replica took the account: the window is then the
        new holder's to count, and an old count written over it would let it send more.
        """
        with self.db.session() as s:
            stmt = update(SyncAccount).where(SyncAccount.name == name)
            if token is not None:
                stmt = stmt.where(SyncAccount.lease_token == token)
            done = s.execute(stmt.values(guest_window_start=start, guest_window_count=count))
            if token is not None and not done.rowcount:  # type: ignore[attr-defined]
                raise LeaseLost(account=name)

    def acquire_lease(self, name: str, owner: str, ttl: timedelta, now: datetime | None = None,
                      *, holder: str | None = None) -> int | None:
        """Take the account's lease unless another live holder has it; returns the token.

        One conditional UPDATE, so two replicas racing for it cannot both win, on SQLite
        and PostgreSQL alike. The token increases on every take and fences a holder
        whose lease expired while it was still working. On PostgreSQL the lease runs on
        the database's clock (``now`` is not used): replicas' clocks may disagree.
        ``holder``: the lease's holder as the caller just read it (else it is read here).
        """
        if holder is None:
            holder = self.account(name).lease_owner
        taken = self._take_lease(name, owner, ttl, now, holder)
        return None if taken is None else taken.lease_token

    def _take_lease(self, name: str, owner: str, ttl: timedelta, now: datetime | None,
                    holder: str | None) -> AccountState | None:
        """:meth:`acquire_lease`'s UPDATE; returns the account's row after it (None: the
        lease is someone else's)."""
        with self.db.session() as s:
            clock = db_clock(s, now)
            takeable = or_(SyncAccount.lease_until.is_(None), SyncAccount.lease_until < clock,
                           SyncAccount.lease_owner == owner)
            if holder is not None and holder_is_dead(holder):
                # A process on this machine that was killed cannot renew or release its
                # lease; waiting out the TTL would stall a restarted daemon for minutes.
                takeable = or_(takeable, SyncAccount.lease_owner == holder)
            row = s.execute(
                update(SyncAccount)
                .where(SyncAccount.name == name)
                .where(takeable)
                .values(lease_owner=owner, lease_until=clock + ttl,
                        lease_token=SyncAccount.lease_token + 1,
                        takeovers=SyncAccount.takeovers + taken_over(owner))
                .returning(*_STATE_COLUMNS)
                .execution_options(synchronize_session=False)
            ).first()
            return None if row is None else AccountState(*row)

    def renew_lease(self, name: str, token: int, ttl: timedelta, now: datetime | None = None
                    ) -> bool:
        """Extend a lease we hold; False when another holder took it meanwhile (the
        fence checked before every write batch)."""
        with self.db.session() as s:
            result = s.execute(update(SyncAccount)
                               .where(SyncAccount.name == name, SyncAccount.lease_token == token)
                               .values(lease_until=db_clock(s, now) + ttl))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def release_lease(self, name: str, token: int) -> None:
        with self.db.session() as s:
            s.execute(update(SyncAccount)
                      .where(SyncAccount.name == name, SyncAccount.lease_token == token)
                      .values(lease_owner=None, lease_until=None))

    def holds(self, name: str, token: int) -> bool:
        """Whether ``token`` is still the account's lease (no other replica took it)."""
        with self.db.session() as s:
            return _fenced(s, name, token)

    def commit_cursors(self, name: str, token: int | None, *, listed_upto: int | None = None,
                       **values: Any) -> bool:
        """Store cursors only if we still hold the lease (fencing); False if we lost it.

        ``listed_upto``: the last create of the write log that the listing behind the
        calendar cursor covered (:meth:`unlisted_creates`); only later ones, made after
        that listing, are left for the next cycle to look for.
        """
        if listed_upto is not None:
            values["creates_unlisted_from"] = _first_create_after(name, listed_upto)
        with self.db.session() as s:
            stmt = update(SyncAccount).where(SyncAccount.name == name)
            if token is not None:
                stmt = stmt.where(SyncAccount.lease_token == token)
            return bool(s.execute(stmt.values(**values)).rowcount)  # type: ignore[attr-defined]

    # --- meetings ----------------------------------------------------------------------

    def meeting_holders(self, ical_uids: Iterable[str]) -> dict[str, str]:
        """The account holding each of these meetings (UIDs nobody holds are absent)."""
        return {uid: account for uid, account, _activity in self._meetings(ical_uids)}

    def meeting_activities(self, account: str, ical_uids: Iterable[str]) -> dict[str, int]:
        """The activity each of these meetings became in ``account`` (UIDs that account
        does not hold, or holds without an activity, are absent)."""
        return {uid: activity for uid, holder, activity in self._meetings(ical_uids)
                if holder == account and activity is not None}

    def _meetings(self, ical_uids: Iterable[str]) -> list[tuple[str, str, int | None]]:
        """(UID, holding account, activity) of each of these meetings that is held."""
        by_hash = {_uid_hash(uid): uid for uid in set(ical_uids)}
        hashes = sorted(by_hash)
        found: list[tuple[str, str, int | None]] = []
        with self.db.session() as s:
            for i in range(0, len(hashes), _IN_SLICE):
                rows = s.execute(select(SyncMeeting.uid_hash, SyncMeeting.account,
                                        SyncMeeting.activity_id).where(
                    SyncMeeting.uid_hash.in_(hashes[i:i + _IN_SLICE])))
                found += [(by_hash[h], account, activity) for h, account, activity in rows]
        return found

    def claim_meeting(self, account: str, ical_uid: str, activity_id: int | None = None,
                      *, token: int | None = None) -> str:
        """Claim a meeting for ``account``; returns the account that holds it now.

        The first claim wins, atomically: two accounts importing copies of one meeting
        at the same moment cannot both get it. A holder's later claim records the
        activity made from it. ``token``: the cycle's lease, checked in the same
        transaction (fencing, as :meth:`record`); raises LeaseLost, claiming nothing.
        """
        with self.db.session() as s:
            if token is not None and not _fenced(s, account, token):
                raise LeaseLost(account=account)
            _claim(s, [(ical_uid, account, activity_id)])
            row = s.get(SyncMeeting, _uid_hash(ical_uid))
            assert row is not None
            if row.account == account and activity_id is not None:
                row.activity_id = activity_id
            return row.account

    # --- links -------------------------------------------------------------------------

    def links(self, account: str) -> dict[int, SyncPair]:
        """Every link of ``account`` (for tools and tests; a cycle loads only what it needs)."""
        with self.db.session() as s:
            rows = s.scalars(select(SyncLink).where(SyncLink.account == account))
            return {r.activity_id: _link(r) for r in rows}

    def links_touching(self, account: str, *, activity_ids: Iterable[int] = (),
                       event_ids: Iterable[str] = (), markers: Iterable[str] = ()
                       ) -> dict[int, SyncPair]:
        """The links a cycle needs: those of these activities, events and markers, and
        every pending create, by activity id.

        A cycle plans only the pairs that changed, so it never loads the links of an
        account's quiet majority: an idle cycle costs the same for 20 events or 20,000.
        """
        wanted: list[Any] = [_PENDING_LINKS]
        by: list[tuple[Any, Iterable[Any]]] = [
            (_LINKS.c.activity_id, activity_ids), (_LINKS.c.event_id, event_ids),
            (_LINKS.c.sync_uid, markers)]
        for column, values in by:
            ordered = sorted(set(values))
            # In slices: SQLite caps the parameters of one statement.
            wanted += [select(_LINKS).where(_LINKS.c.account == bindparam("account"),
                                            column.in_(ordered[i:i + _IN_SLICE]))
                       for i in range(0, len(ordered), _IN_SLICE)]
        found: dict[int, SyncPair] = {}
        # (several statements in one transaction: the pending creates and the changed
        # pairs read as one state)
        with (self.db.read() if len(wanted) == 1 else self.db.transaction()) as conn:
            for query in wanted:
                for row in conn.execute(query, {"account": account}):
                    found.setdefault(row.activity_id, _link(row))
        return found

    def linked_accounts(self, activity_id: int) -> list[str]:
        """The accounts where the activity has an event, or a create in flight."""
        with self.db.session() as s:
            return list(s.scalars(select(SyncLink.account).where(
                SyncLink.activity_id == activity_id,
                or_(SyncLink.event_id.is_not(None), SyncLink.pending.is_(True)))))

    def link_count(self, account: str, *, settled: bool = False) -> int:
        """How many links ``account`` has (``settled``: leaving out pending creates)."""
        stmt = select(func.count()).select_from(SyncLink).where(SyncLink.account == account)
        if settled:
            stmt = stmt.where(SyncLink.pending.is_(False))
        with self.db.session() as s:
            return int(s.scalar(stmt) or 0)

    def save_link(self, account: str, link: SyncPair, token: int | None = None) -> None:
        """Insert or replace the link of ``link.activity_id`` in ``account`` (``token``:
        fenced, as :meth:`record`)."""
        self.record(account, saves=[link], token=token)

    def record(
        self,
        account: str,
        *,
        saves: Iterable[SyncPair] = (),
        drops: Iterable[int] = (),
        conflicts: Iterable[tuple[int | None, str | None, Conflict]] = (),
        cleared: Iterable[str] = (),
        meetings: Iterable[tuple[str, int]] = (),
        writes: Iterable[tuple[str, str | None, str]] = (),
        sent: Iterable[tuple[int, Mapping[str, Any]]] = (),
        deletions: tuple[datetime, int] | None = None,
        token: int | None = None,
    ) -> None:
        """Links saved and dropped, conflicts kept, failures cleared, meetings claimed
        (``(ical_uid, activity_id)`` of events syncd created), calendar writes logged
        (``(event_id, etag, op)``, see :meth:`written_events`) and event updates about to
        be sent (``(activity_id, {field: JSON value})``, added after the link's ``sent`` and kept
        until the link is saved again) and propagated deletions counted for the daily
        deletion budget (``(the cycle's time, how many)``), in ONE transaction.

        ``token``: the cycle's lease, checked in that transaction (fencing); raises
        LeaseLost, recording nothing, when another replica took the account.

        The runner records a whole batch of finished writes at once: with SQLite's
        synchronous=FULL every commit is an fsync, so one per batch rather than several
        per event is most of the cost of a first sync.
        """
        saves = list(saves)
        with self.db.session() as s:
            if token is not None and not _fenced(s, account, token):
                raise LeaseLost(account=account)
            existing = {}
            ids = [link.activity_id for link in saves]
            for start in range(0, len(ids), _IN_SLICE):
                rows = s.scalars(select(SyncLink).where(
                    SyncLink.account == account,
                    SyncLink.activity_id.in_(ids[start:start + _IN_SLICE])))
                existing.update({row.activity_id: row for row in rows})
            now = utcnow()
            for link in saves:
                row = existing.get(link.activity_id)
                if row is None:
                    row = SyncLink(account=account, activity_id=link.activity_id)
                    s.add(row)
                    existing[link.activity_id] = row
                row.sync_uid = link.sync_uid
                row.event_id = link.event_id
                row.etag = link.etag
                row.generation = link.generation
                row.pending = link.pending
                row.crm_base = link.crm_base.to_json() if link.crm_base else None
                row.cal_base = link.cal_base.to_json() if link.cal_base else None
                row.invited = sorted(link.invited) if link.invited is not None else None
                row.organizer = link.organizer
                row.sent = [dict(update) for update in link.sent] or None
                row.updated_at = now
            drop_ids = list(drops)
            if drop_ids:
                s.flush()
                s.execute(delete(SyncLink).where(SyncLink.account == account,
                                                 SyncLink.activity_id.in_(drop_ids)))
            for activity_id, event_id, c in _new_conflicts(s, account, conflicts):
                s.add(SyncConflict(account=account, activity_id=activity_id, event_id=event_id,
                                   field=c.field, crm_value=c.crm_value,
                                   calendar_value=c.calendar_value, winner=c.winner,
                                   policy=c.policy, resolved=False))
            keys = list(cleared)
            if keys:
                s.execute(delete(SyncQuarantine).where(SyncQuarantine.account == account,
                                                       SyncQuarantine.item_key.in_(keys)))
            _claim(s, [(uid, account, activity_id) for uid, activity_id in meetings])
            sent = list(sent)
            before = _sent_now(s, account, [activity_id for activity_id, _ in sent]) \
                if sent else {}
            for activity_id, fields in sent:
                s.execute(update(SyncLink).where(SyncLink.account == account,
                                                 SyncLink.activity_id == activity_id)
                          .values(sent=_with_update(before.get(activity_id, ()),
                                                    dict(fields))))
            logged = [SyncWrite(account=account, event_id=event_id, etag=etag, op=op, at=now)
                      for event_id, etag, op in writes]
            s.add_all(logged)
            created = [row for row in logged if row.op == "create"]
            if created:
                # Our creates are after the listing the cycle's cursor comes from: the
                # next cycle looks for them (the first one not yet looked for is kept).
                s.flush()
                s.execute(update(SyncAccount).where(
                    SyncAccount.name == account, SyncAccount.creates_unlisted_from.is_(None))
                    .values(creates_unlisted_from=min(row.id for row in created)))
            if deletions is not None and deletions[1] > 0:
                s.add(SyncDeletion(account=account, at=deletions[0], count=deletions[1]))

    def written_events(self, account: str) -> set[str]:
        """The events of the account syncd wrote to (within the log's retention)."""
        with self.db.session() as s:
            return set(s.scalars(select(SyncWrite.event_id).where(SyncWrite.account == account)))

    def unlisted_creates(self, account: str, since: int) -> list[tuple[int, str]]:
        """``(write log id, event id)`` of the account's creates from id ``since`` on (see
        :attr:`AccountState.creates_unlisted_from`), oldest first."""
        with self.db.session() as s:
            rows = s.execute(select(SyncWrite.id, SyncWrite.event_id).where(
                SyncWrite.account == account, SyncWrite.op == "create", SyncWrite.id >= since)
                .order_by(SyncWrite.id))
            return [(row_id, event_id) for row_id, event_id in rows]

    def last_written(self, account: str) -> dict[str, str | None]:
        """Each event of the account syncd wrote to -> the etag its last write left."""
        with self.db.session() as s:
            rows = s.execute(select(SyncWrite.event_id, SyncWrite.etag)
                             .where(SyncWrite.account == account).order_by(SyncWrite.id))
            return {event_id: etag for event_id, etag in rows}

    def prune_writes(self, before: datetime) -> int:
        """Forget the write log's entries older than ``before`` (and the deletion counts
        as old, long past the budget's day); returns how many log entries."""
        with self.db.session() as s:
            result = s.execute(delete(SyncWrite).where(SyncWrite.at < before))
            s.execute(delete(SyncDeletion).where(SyncDeletion.at < before))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    # --- the daily deletion budget (syncd.engine.guards.deletion_hold) ------------------

    def deletions_since(self, account: str, since: datetime) -> int:
        """Propagated deletions the account's cycles recorded after ``since``."""
        with self.db.read() as conn:
            return int(conn.execute(
                select(func.coalesce(func.sum(SyncDeletion.count), 0)).where(
                    SyncDeletion.account == account, SyncDeletion.at > since)).scalar() or 0)

    def hold_deletions(self, account: str, since: datetime, token: int | None) -> None:
        """Make the account's propagated deletions wait for an admin from ``since`` (kept
        if they already do). ``token``: the cycle's lease (fencing, as :meth:`record`)."""
        with self.db.session() as s:
            if token is not None and not _fenced(s, account, token):
                raise LeaseLost(account=account)
            s.execute(update(SyncAccount).where(SyncAccount.name == account,
                                                SyncAccount.deletions_held_since.is_(None))
                      .values(deletions_held_since=since))

    def allow_deletions(self, account: str, at: datetime, token: int | None) -> None:
        """An admin let the account's deletions through (``--force-delete``): the hold
        ends and the deletions before ``at`` no longer count towards the day's budget."""
        with self.db.session() as s:
            if token is not None and not _fenced(s, account, token):
                raise LeaseLost(account=account)
            s.execute(update(SyncAccount).where(SyncAccount.name == account)
                      .values(deletions_held_since=None, deletions_allowed_at=at))

    # --- conflicts ----------------------------------------------------------------------

    def conflicts(self, account: str | None = None, *, open_only: bool = True
                  ) -> list[dict[str, Any]]:
        with self.db.session() as s:
            stmt = select(SyncConflict).order_by(SyncConflict.id)
            if account:
                stmt = stmt.where(SyncConflict.account == account)
            if open_only:
                stmt = stmt.where(SyncConflict.resolved.is_(False))
            return [_conflict(c) for c in s.scalars(stmt)]

    def open_conflict_count(self, account: str) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(SyncConflict).where(
                SyncConflict.account == account, SyncConflict.resolved.is_(False))) or 0)

    def conflict(self, conflict_id: int) -> dict[str, Any]:
        """One conflict, open or resolved.

        Raises:
            NotFound: there is no conflict with this id.
        """
        with self.db.session() as s:
            row = s.get(SyncConflict, conflict_id)
            if row is None:
                raise NotFound(kind="conflict", key=conflict_id)
            return _conflict(row)

    def close_conflict(self, conflict_id: int) -> None:
        """Mark a conflict resolved: it no longer counts as open."""
        with self.db.session() as s:
            s.execute(update(SyncConflict).where(SyncConflict.id == conflict_id)
                      .values(resolved=True))

    def forget_activities(self, activity_ids: Iterable[int]) -> None:
        """Drop the conflicts and CRM-side quarantine entries of purged activities.

        Links stay: a purged activity's tombstone still reaches each account's next
        cycle, which deletes any event left and drops the link then.
        """
        ids = sorted(set(activity_ids))
        with self.db.session() as s:
            for i in range(0, len(ids), _IN_SLICE):
                chunk = ids[i:i + _IN_SLICE]
                s.execute(delete(SyncConflict).where(SyncConflict.activity_id.in_(chunk)))
                s.execute(delete(SyncQuarantine).where(
                    SyncQuarantine.item_key.in_([f"crm:{a}" for a in chunk])))

    # --- quarantine ---------------------------------------------------------------------

    def failing_keys(self, account: str) -> set[str]:
        """Every item with a failure on record, retrying or given up."""
        with self.db.session() as s:
            return set(s.scalars(select(SyncQuarantine.item_key)
                                 .where(SyncQuarantine.account == account)))

    def held_items(self, account: str) -> HeldItems:
        """The items a cycle's start needs to know about, in one query: those given up on
        and those an admin released (an idle cycle's account usually has neither)."""
        quarantined: dict[str, str | None] = {}
        retry: list[str] = []
        with self.db.read() as conn:
            for key, state, version in conn.execute(_HELD_ITEMS, {"account": account}):
                if state == RETRY:
                    retry.append(key)
                else:
                    quarantined[key] = version
        return HeldItems(quarantined, retry)

    def quarantined(self, account: str) -> dict[str, str | None]:
        """Keys given up on (state "quarantined"), with the version that failed."""
        with self.db.session() as s:
            rows = s.scalars(select(SyncQuarantine).where(SyncQuarantine.account == account,
                                                          SyncQuarantine.state == "quarantined"))
            return {r.item_key: r.version for r in rows}

    def record_failure(self, account: str, key: str, version: str | None, reason: str,
                       *, immediate: bool = False, token: int | None = None) -> bool:
        """Count a failure of one item; returns True once it is quarantined.

        ``immediate`` quarantines at once (an unreadable event will not read better on
        retry); otherwise it takes :data:`MAX_ATTEMPTS` failures in a row. ``token``: the
        cycle's lease, checked in the same transaction (fencing, as :meth:`record`);
        raises LeaseLost, counting nothing: a replica that lost the account must not
        push the new holder's items towards the quarantine.
        """
        now = utcnow()
        with self.db.session() as s:
            if token is not None and not _fenced(s, account, token):
                raise LeaseLost(account=account)
            row = s.scalar(select(SyncQuarantine).where(SyncQuarantine.account == account,
                                                        SyncQuarantine.item_key == key))
            if row is None:
                row = SyncQuarantine(account=account, item_key=key, attempts=0, first_at=now)
                s.add(row)
            row.attempts = (row.attempts or 0) + 1
            row.version = version
            row.reason = reason
            row.last_at = now
            row.state = "quarantined" if immediate or row.attempts >= MAX_ATTEMPTS else "retrying"
            return row.state == "quarantined"

    def clear_failure(self, account: str, key: str) -> None:
        with self.db.session() as s:
            s.execute(delete(SyncQuarantine).where(SyncQuarantine.account == account,
                                                   SyncQuarantine.item_key == key))

    def quarantine_list(self, account: str | None = None, *, state: str | None = None,
                        limit: int | None = None) -> list[dict[str, Any]]:
        """Items with a failure on record, oldest first (``state``: only that state)."""
        with self.db.session() as s:
            stmt = select(SyncQuarantine).order_by(SyncQuarantine.id)
            if account:
                stmt = stmt.where(SyncQuarantine.account == account)
            if state:
                stmt = stmt.where(SyncQuarantine.state == state)
            if limit is not None:
                stmt = stmt.limit(limit)
            return [
                {"id": q.id, "account": q.account, "item": q.item_key, "reason": q.reason,
                 "version": q.version, "attempts": q.attempts, "state": q.state,
                 "first_at": q.first_at, "last_at": q.last_at}
                for q in s.scalars(stmt)
            ]

    def quarantine_count(self, account: str, state: str = "quarantined") -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(SyncQuarantine).where(
                SyncQuarantine.account == account, SyncQuarantine.state == state)) or 0)

    def quarantine_counts(self, state: str = "quarantined") -> dict[str, int]:
        """How many items each account has in ``state`` (accounts with none left out)."""
        with self.db.session() as s:
            rows = s.execute(select(SyncQuarantine.account, func.count())
                             .where(SyncQuarantine.state == state)
                             .group_by(SyncQuarantine.account))
            return {account: int(count) for account, count in rows}

    def verified(self, name: str, at: datetime, findings: Mapping[str, int]) -> None:
        """Record a scheduled audit of the account that read it at ``at``, and its
        findings by kind (read-only: neither the lease nor the status is touched)."""
        with self.db.session() as s:
            s.execute(update(SyncAccount).where(SyncAccount.name == name).values(
                verified_at=at, verify_findings=dict(findings)))

    def verify_results(self) -> dict[str, tuple[datetime, dict[str, int]]]:
        """The last scheduled audit of each account audited: when, and its findings."""
        with self.db.session() as s:
            rows = s.execute(select(SyncAccount.name, SyncAccount.verified_at,
                                    SyncAccount.verify_findings)
                             .where(SyncAccount.verified_at.is_not(None)))
            return {name: (at, {str(k): v for k, v in (found or {}).items()
                                if isinstance(v, int)})
                    for name, at, found in rows if at is not None}

    def retry_item(self, item_id: int) -> dict[str, Any]:
        """Let the next cycle of its account try a failed item again (state "retry").

        Its record stays until that cycle: success clears it, a new failure counts on.

        Raises:
            NotFound: no item with this id is on record.
        """
        with self.db.session() as s:
            row = s.get(SyncQuarantine, item_id)
            if row is None:
                raise NotFound(kind="quarantined item", key=item_id)
            before = row.state
            row.state = RETRY
            return {"id": row.id, "account": row.account, "item": row.item_key,
                    "was": before}

    def retry_keys(self, account: str) -> list[str]:
        """The items of ``account`` an admin asked to try again."""
        with self.db.session() as s:
            return list(s.scalars(select(SyncQuarantine.item_key).where(
                SyncQuarantine.account == account, SyncQuarantine.state == RETRY)))

    def clear_retries(self, account: str, keys: Iterable[str], *, token: int | None = None
                      ) -> None:
        """Forget retried items that a cycle went through without a new failure.
        ``token``: the cycle's lease (fencing, as :meth:`record`); raises LeaseLost,
        forgetting nothing."""
        wanted = list(keys)
        if not wanted:
            return
        with self.db.session() as s:
            if token is not None and not _fenced(s, account, token):
                raise LeaseLost(account=account)
            for i in range(0, len(wanted), _IN_SLICE):
                s.execute(delete(SyncQuarantine).where(
                    SyncQuarantine.account == account, SyncQuarantine.state == RETRY,
                    SyncQuarantine.item_key.in_(wanted[i:i + _IN_SLICE])))
