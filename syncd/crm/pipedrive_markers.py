"""The Pipedrive source's memory in syncd's state (table ``pipedrive_markers``).

Pipedrive's records carry nothing of syncd's: the marker (``sync_uid``) that pairs an
activity with its calendar event is kept here, per company and activity id, and minted
(random, like the built-in store's) the first time the source reads an activity. Besides
the marker a row remembers:

* the owner last read, and (table ``pipedrive_moves``) every previous owner whose feed
  has still to show that the activity was handed to someone else: an activity handed on
  again (A to B to C) before A's feed was told keeps A and B, and one handed back to an
  owner still waiting (A to B to A) is that owner's own again, nothing to be told;
* ``seen_at``: when a read last showed it alive, so the deletion reconciliation asks
  Pipedrive about the activities it has not seen for longest; ``gone`` once its deletion
  was reported;
* for an import (:class:`~syncd.crm.source.ImportActivity`) whose POST may have gone out:
  ``pending_since``, the ``fingerprint`` of what was sent and the ``floor`` (the newest
  ``update_time`` seen before it), committed before the POST is sent.

Nothing here holds activity content, let alone a note.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from syncd.store.db import Database
from syncd.store.state_tables import PipedriveMarker, PipedriveMove

#: Attempts at minting markers when another process mints the same ones at once.
MINT_ATTEMPTS = 3


@dataclass(frozen=True)
class Marker:
    """One row, as the source uses it."""

    sync_uid: str
    activity_id: int | None
    owner_id: int | None
    pending: bool
    fingerprint: str | None = None
    floor: str | None = None


@dataclass(frozen=True)
class Read:
    """An activity as a read showed it: what its marker row needs.

    ``fingerprint``, ``creator_ok`` and ``added`` let a first read recognise an import
    whose POST went out but whose id was never recorded.
    """

    activity_id: int
    owner_id: int
    fingerprint: str
    creator_ok: bool
    added: datetime | None

    def answers(self, intent: PipedriveMarker) -> bool:
        """Whether this activity is what the pending import ``intent`` created."""
        if not self.creator_ok or intent.owner_id != self.owner_id or (
                intent.fingerprint != self.fingerprint):
            return False
        if intent.floor is None or self.added is None:
            return True
        return self.added >= datetime.fromisoformat(intent.floor)


def _marker(row: PipedriveMarker) -> Marker:
    return Marker(row.sync_uid, row.activity_id, row.owner_id, row.pending_since is not None,
                  row.fingerprint, row.floor)


class MarkerStore:
    """The markers of one company (``company``: its domain)."""

    def __init__(self, db: Database, company: str,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.db = db
        self.company = company
        self.now = clock

    # --- markers of activities read -------------------------------------------------------

    def seen(self, reads: Sequence[Read]) -> tuple[dict[int, str], set[int]]:
        """Record that the activities ``reads`` were read alive now.

        An activity read for the first time that matches an import still pending (same
        owner and fingerprint, made by syncd's user, added at or after the import's
        floor) is that import's activity and takes its marker; the others get new ones.

        Returns:
            Their markers, and the ids whose owner changed since the last read (handed
            over; the previous owners' feeds are told by :meth:`moved_away`).
        """
        for _ in range(MINT_ATTEMPTS):
            try:
                return self._seen(reads)
            except IntegrityError:  # another process minted one of them first: read again
                continue
        return self._seen(reads)

    def _seen(self, reads: Sequence[Read]) -> tuple[dict[int, str], set[int]]:
        uids: dict[int, str] = {}
        moved: set[int] = set()
        if not reads:
            return uids, moved
        by_id = {read.activity_id: read for read in reads}
        now = self.now()
        with self.db.session() as session:
            rows = session.scalars(select(PipedriveMarker).where(
                PipedriveMarker.company == self.company,
                PipedriveMarker.activity_id.in_(list(by_id)))).all()
            handovers: dict[int, int] = {}  # activity id -> the owner it left
            for row in rows:
                assert row.activity_id is not None
                owner = by_id[row.activity_id].owner_id
                if row.owner_id is not None and row.owner_id != owner:
                    moved.add(row.activity_id)
                    handovers[row.activity_id] = row.owner_id
                row.owner_id, row.seen_at, row.gone = owner, now, False
                uids[row.activity_id] = row.sync_uid
            if handovers:
                self._remember_moves(session, handovers,
                                     {i: by_id[i].owner_id for i in handovers})
            new = [by_id[i] for i in sorted(set(by_id) - uids.keys())]
            pending = list(session.scalars(select(PipedriveMarker).where(
                PipedriveMarker.company == self.company,
                PipedriveMarker.activity_id.is_(None),
                PipedriveMarker.pending_since.is_not(None))
                .order_by(PipedriveMarker.pending_since)).all()) if new else []
            for read in new:
                intent = next((row for row in pending if read.answers(row)), None)
                if intent is not None:
                    pending.remove(intent)
                    intent.activity_id, intent.pending_since = read.activity_id, None
                    intent.owner_id, intent.seen_at = read.owner_id, now
                    uids[read.activity_id] = intent.sync_uid
                    continue
                uid = uuid.uuid4().hex  # random: reveals nothing about the activity
                session.add(PipedriveMarker(company=self.company, sync_uid=uid,
                                            activity_id=read.activity_id,
                                            owner_id=read.owner_id, seen_at=now, gone=False))
                uids[read.activity_id] = uid
        return uids, moved

    def _remember_moves(self, session: Session, left: dict[int, int], owners: dict[int, int]
                        ) -> None:
        """Each activity in ``left`` left that owner for the one in ``owners``: the owner
        left waits to be told (besides any earlier one still waiting), and the new owner,
        should it be one still waiting (handed away and back), is told nothing: the
        activity is its own again, and its feed must not take it for moved away."""
        waiting = {(int(i), int(o)) for i, o in session.execute(
            select(PipedriveMove.activity_id, PipedriveMove.owner_id).where(
                PipedriveMove.company == self.company,
                PipedriveMove.activity_id.in_(list(left)))).all()}
        back = [(i, o) for i, o in owners.items() if (i, o) in waiting]
        for activity_id, owner_id in back:
            session.execute(delete(PipedriveMove).where(
                PipedriveMove.company == self.company, PipedriveMove.owner_id == owner_id,
                PipedriveMove.activity_id == activity_id))
        session.add_all(PipedriveMove(company=self.company, owner_id=o, activity_id=i)
                        for i, o in sorted(left.items()) if (i, o) not in waiting)

    def uids_of(self, ids: Iterable[int]) -> dict[int, str]:
        """The markers the activities ``ids`` have (those never read have none)."""
        wanted = list(ids)
        if not wanted:
            return {}
        with self.db.session() as session:
            rows = session.execute(select(PipedriveMarker.activity_id, PipedriveMarker.sync_uid)
                                   .where(PipedriveMarker.company == self.company,
                                          PipedriveMarker.activity_id.in_(wanted))).all()
        return {int(a): u for a, u in rows if a is not None}

    def by_uid(self, sync_uid: str) -> Marker | None:
        with self.db.session() as session:
            row = session.get(PipedriveMarker, (self.company, sync_uid))
            return _marker(row) if row is not None else None

    def _set(self, ids: Iterable[int], **values: object) -> None:
        wanted = list(ids)
        if wanted:
            with self.db.session() as session:
                session.execute(update(PipedriveMarker).where(
                    PipedriveMarker.company == self.company,
                    PipedriveMarker.activity_id.in_(wanted)).values(**values))

    def gone(self, ids: Iterable[int]) -> None:
        """The deletions of ``ids`` were reported: the reconciliation skips them now."""
        self._set(ids, gone=True)

    # --- the deletion reconciliation and handovers ------------------------------------------

    def unseen(self, owner_id: int, older_than: timedelta, limit: int) -> list[int]:
        """Up to ``limit`` of the owner's live activities not seen for ``older_than``,
        the longest unseen first."""
        cutoff = self.now() - older_than
        with self.db.session() as session:
            ids = session.scalars(
                select(PipedriveMarker.activity_id).where(
                    PipedriveMarker.company == self.company,
                    PipedriveMarker.owner_id == owner_id,
                    PipedriveMarker.activity_id.is_not(None),
                    PipedriveMarker.gone.is_(False),
                    or_(PipedriveMarker.seen_at.is_(None), PipedriveMarker.seen_at <= cutoff))
                .order_by(PipedriveMarker.seen_at.asc().nulls_first(),
                          PipedriveMarker.activity_id)
                .limit(limit)).all()
        return [int(i) for i in ids if i is not None]

    def moved_away(self, owner_id: int, limit: int) -> list[int]:
        """Activities handed from ``owner_id`` to another owner since its feed last said so."""
        with self.db.session() as session:
            ids = session.scalars(select(PipedriveMove.activity_id).where(
                PipedriveMove.company == self.company, PipedriveMove.owner_id == owner_id)
                .order_by(PipedriveMove.activity_id).limit(limit)).all()
        return [int(i) for i in ids]

    def told_moved(self, ids: Iterable[int], owner_id: int) -> None:
        """The feed of ``owner_id`` has shown that ``ids`` moved away from it (the other
        previous owners still waiting keep waiting)."""
        wanted = list(ids)
        if wanted:
            with self.db.session() as session:
                session.execute(delete(PipedriveMove).where(
                    PipedriveMove.company == self.company, PipedriveMove.owner_id == owner_id,
                    PipedriveMove.activity_id.in_(wanted)))

    def check_soon(self, ids: Iterable[int]) -> None:
        """Have the next reconciliation ask about ``ids`` first (a webhook said they were
        deleted)."""
        self._set(ids, seen_at=None)

    # --- import intents -----------------------------------------------------------------------

    def intend(self, sync_uid: str, owner_id: int, fingerprint: str, floor: str | None) -> bool:
        """Record an import before its POST; False when the marker has a row already."""
        try:
            with self.db.session() as session:
                session.add(PipedriveMarker(company=self.company, sync_uid=sync_uid,
                                            owner_id=owner_id, pending_since=self.now(),
                                            fingerprint=fingerprint, floor=floor, gone=False))
        except IntegrityError:
            return False
        return True

    def created(self, sync_uid: str, activity_id: int) -> bool:
        """The import's activity is ``activity_id``: its row is a marker from now on.

        False when that activity already has another marker (it was adopted by another
        import: the caller must not use it for this one).
        """
        try:
            with self.db.session() as session:
                session.execute(update(PipedriveMarker).where(
                    PipedriveMarker.company == self.company,
                    PipedriveMarker.sync_uid == sync_uid).values(
                        activity_id=activity_id, pending_since=None, seen_at=self.now(),
                        gone=False))
        except IntegrityError:
            return False
        return True

    def abandon(self, sync_uid: str) -> None:
        """The import's POST was refused: nothing was created, forget the intent."""
        with self.db.session() as session:
            session.execute(delete(PipedriveMarker).where(
                PipedriveMarker.company == self.company,
                PipedriveMarker.sync_uid == sync_uid,
                PipedriveMarker.activity_id.is_(None)))
