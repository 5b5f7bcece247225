"""Pipedrive as a CRM source (``[crm] kind = "pipedrive"``), over its v2 activities API.

* **Users** are matched by e-mail from ``GET /v1/users`` (with their time zones), read
  once and again at most every :data:`USERS_TTL` seconds when an address is not found.
* **Changes**: ``GET /api/v2/activities`` per owner with ``updated_since``, sorted by
  ``update_time``, ``limit`` up to 500 and ``include_fields=attendees``; the cursor
  (:mod:`syncd.crm.pipedrive_cursor`) handles many changes in one second.
* **Deletions** come from the list when Pipedrive lists deleted activities, and in any
  case from a **reconciliation** at the end of an owner's feed: the activities syncd knows
  that no read has shown for ``reconcile_after`` are asked for by ``ids=`` (one request
  for up to 100); one that is absent is read alone (deleted, or a tombstone once purged).
  Activities handed to another owner are shown in every previous owner's feed too.
* **Markers** live in syncd's state (:mod:`syncd.crm.pipedrive_markers`), never in
  Pipedrive's records.
* **Writes** are read-check-write: v2 has no If-Match, so the activity is read just before
  a PATCH or DELETE and the write is refused (:class:`~syncd.errors.ActivityChanged`) when
  it changed since the source last handed it to the engine (compared by a digest of the
  whole item, not ``update_time``, whose whole seconds would hide an edit made in the same
  second). A change made in Pipedrive between that read and the write (one round trip) is
  the window left; it is overwritten only in the fields syncd sends, which a PATCH limits
  to the managed ones. An activity the source never handed out (a write after a restart)
  is checked against nothing: the read just before the write is the base.
* **Imports** are idempotent across a crash between the POST and recording its id: the
  intent (marker, owner, a fingerprint of the fields sent and the newest ``update_time``
  seen) is committed before the POST, and an activity first read later that matches it
  (same owner and fingerprint, created by syncd's Pipedrive user, added after the floor)
  takes the import's marker instead of a new one; a pending import looks for it before
  posting again. Left open: if someone edits one of the fingerprinted fields (subject,
  type, due date and time, duration) of the new activity, or deletes it while Pipedrive
  does not list deleted items, before syncd reads it back, the import is posted again.
* **The note** is dropped by the HTTP layer as it parses an answer; it is never sent.
  :meth:`PipedriveSource.notes` is the one way to read notes, for ``syncd verify``'s
  privacy audit (which searches calendar events for them); a cycle never calls it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import requests

from syncd.crm.pipedrive_auth import TOKEN_URL, ApiToken, OAuthTokens
from syncd.crm.pipedrive_budget import Limits, PipedriveBudget, token_key_of
from syncd.crm.pipedrive_cursor import Cursor, Row, advance
from syncd.crm.pipedrive_http import DEFAULT_TIMEOUT, Budget, PipedriveHttp, pipedrive_session
from syncd.crm.pipedrive_map import (
    JsonDict,
    Lookups,
    digest,
    import_fingerprint,
    item_fingerprint,
    parse_stamp,
    persons_wanted,
    stamp,
    to_activity,
    user_zone,
    write_body,
)
from syncd.crm.pipedrive_markers import MarkerStore, Read
from syncd.crm.source import (
    ApplyChanges,
    Consistency,
    ImportActivity,
    RemoveActivity,
    SourceChanges,
    SourceOp,
    SourceResult,
    SourceUser,
)
from syncd.errors import ActivityChanged, InvalidInput, NotFound, SyncdError
from syncd.failpoints import failpoint
from syncd.model import Activity, Tombstone, normalize_email
from syncd.safe_json import WrongType, oversize
from syncd.store.budgets import BudgetLedger
from syncd.store.db import Database

log = logging.getLogger("syncd.pipedrive")

ACTIVITIES = "/api/v2/activities"
MAX_LIMIT = 500
MAX_IDS = 100
#: Seconds the users (and activity types) are kept before they are read again, and the
#: soonest they are read again when an e-mail or a type is not among them (20 tokens each).
USERS_TTL = 3600.0
MISS_TTL = 300.0
#: How far back from the newest update_time seen an import's floor is put, for a server
#: whose clocks disagree by a little.
FLOOR_MARGIN = timedelta(minutes=10)


@dataclass(frozen=True)
class PipedriveUser:
    """A Pipedrive user (a seat) as the engine sees it."""

    id: int
    email: str
    time_zone: str
    is_you: bool = False
    active: bool = True  # a deactivated seat keeps its activities but is served by no team


@dataclass(frozen=True)
class Settings:
    """How the source behaves (``[crm]`` options, see :mod:`syncd.crm.pipedrive_options`).

    Attributes:
        company: the company's domain (``acme`` of ``acme.pipedrive.com``); keys the state.
        web_url: where its pages are, for the links back (``https://acme.pipedrive.com``).
        default_zone: the zone of an owner Pipedrive gives none for.
        reconcile_after: an activity no read has shown for this long is asked about.
        reconcile_batch: at most this many are asked about per owner's feed (one request
            per 100).
    """

    company: str
    web_url: str
    default_zone: str = "UTC"
    reconcile_after: timedelta = timedelta(hours=6)
    reconcile_batch: int = MAX_IDS


class PipedriveSource:
    """One Pipedrive company through :class:`syncd.crm.source.CrmSource`."""

    def __init__(self, http: PipedriveHttp, markers: MarkerStore, settings: Settings) -> None:
        self.http = http
        self.markers = markers
        self.settings = settings
        self._lock = threading.Lock()
        self._users: dict[int, PipedriveUser] = {}
        self._users_at: float | None = None
        self._person_emails: dict[int, str | None] = {}
        self._type_keys: frozenset[str] = frozenset()
        self._types_at: float | None = None
        # the digest of each activity as last handed to the engine: the base a
        # read-check-write compares with (what the engine planned against). A digest,
        # not update_time, so an edit within the same second is caught too.
        self._handed: dict[int, str] = {}
        self._newest: datetime | None = None  # the newest update_time seen (server clock)
        self._digests: dict[int, str] = {}  # of the versions read last (any read)

    @property
    def consistency(self) -> Consistency:
        return Consistency.READ_CHECK_WRITE

    # --- users ------------------------------------------------------------------------------

    def _load_users(self, *, force: bool = False) -> dict[int, PipedriveUser]:
        with self._lock:
            age = None if self._users_at is None else time.monotonic() - self._users_at
            if age is not None and age < (MISS_TTL if force else USERS_TTL):
                return self._users
        answer = self.http.get("/v1/users")
        users: dict[int, PipedriveUser] = {}
        for raw in answer.data or []:
            if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), int):
                continue
            email = raw.get("email")
            users[raw["id"]] = PipedriveUser(
                raw["id"], normalize_email(email) if isinstance(email, str) else "",
                user_zone(raw.get("timezone_name"), self.settings.default_zone),
                bool(raw.get("is_you")), raw.get("active_flag") is not False)
        with self._lock:
            self._users, self._users_at = users, time.monotonic()
        return users

    def user(self, email: str) -> SourceUser | None:
        wanted = normalize_email(email)
        for force in (False, True):
            users = self._load_users(force=force)
            found = next((u for u in users.values() if u.email == wanted), None)
            if found is not None:
                return found
        return None

    def user_emails(self) -> Sequence[str]:
        return [u.email for u in self._load_users().values() if u.active and u.email]

    def _zone_of(self, owner_id: int) -> str:
        user = self._load_users().get(owner_id)
        return user.time_zone if user is not None else self.settings.default_zone

    def _types(self, *, force: bool = False) -> frozenset[str]:
        """The keys of the active activity types (``GET /v1/activityTypes``)."""
        with self._lock:
            age = None if self._types_at is None else time.monotonic() - self._types_at
            if age is not None and age < (MISS_TTL if force else USERS_TTL):
                return self._type_keys
        answer = self.http.get("/v1/activityTypes")
        keys = frozenset(t["key_string"] for t in answer.data or []
                         if isinstance(t, Mapping) and isinstance(t.get("key_string"), str)
                         and t.get("active_flag", True))
        with self._lock:
            self._type_keys, self._types_at = keys, time.monotonic()
        return keys

    def _me(self) -> int | None:
        return next((u.id for u in self._load_users().values() if u.is_you), None)

    # --- reading ----------------------------------------------------------------------------

    def _lookups(self) -> Lookups:
        users = self._load_users()
        return Lookups(
            company_url=self.settings.web_url,
            zone_of=self._zone_of,
            email_of_person=lambda pid: self._person_emails.get(pid),
            email_of_user=lambda uid: users[uid].email if uid in users else None)

    def _fetch_persons(self, items: Sequence[Mapping[str, Any]]) -> None:
        wanted = sorted(persons_wanted(items) - self._person_emails.keys())
        for start in range(0, len(wanted), MAX_IDS):
            chunk = wanted[start:start + MAX_IDS]
            answer = self.http.get("/api/v2/persons", {"ids": ",".join(map(str, chunk)),
                                                       "limit": MAX_IDS})
            for person in answer.data or []:
                if isinstance(person, Mapping) and isinstance(person.get("id"), int):
                    emails = [e for e in person.get("emails") or []
                              if isinstance(e, Mapping) and isinstance(e.get("value"), str)]
                    primary = next((e for e in emails if e.get("primary")), None) or (
                        emails[0] if emails else None)
                    self._person_emails[person["id"]] = primary["value"] if primary else None
            for person_id in chunk:
                self._person_emails.setdefault(person_id, None)

    def _activities(self, items: Iterable[Any], *, hand: bool = True, mark_gone: bool = True
                    ) -> tuple[list[Activity], set[int]]:
        """Map listed items: markers from the state, guests' addresses looked up.

        Returns the activities and the ids handed over to their owner since last read.
        An item that cannot be mapped is left out, named by id in the log. Deleted ones
        are marked gone (the reconciliation skips them from then on) unless
        ``mark_gone`` is false (the reconciliation marks its own once its cursor is kept).
        """
        usable: list[JsonDict] = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int) or (
                    not isinstance(item.get("owner_id"), int)):
                log.warning("pipedrive: an activity without a usable id or owner was skipped")
                continue
            problem = oversize(item)
            if problem is not None:
                log.warning("pipedrive: activity %s was skipped: %s", item["id"], problem)
                continue
            usable.append(item)
        if not usable:
            return [], set()
        self._fetch_persons(usable)
        me = self._me()
        reads = []
        for item in usable:
            added = item.get("add_time")
            try:
                added_at = parse_stamp(added) if added else None
            except WrongType:
                added_at = None
            creator = item.get("creator_user_id")
            reads.append(Read(item["id"], item["owner_id"], item_fingerprint(item),
                              me is None or creator == me, added_at))
        uids, moved = self.markers.seen(reads)
        lookups = self._lookups()
        out: list[Activity] = []
        for item in usable:
            try:
                activity = to_activity(item, uids[item["id"]], lookups)
            except (WrongType, ValueError, KeyError) as exc:
                log.warning("pipedrive: activity %s was skipped: %s", item["id"],
                            exc if isinstance(exc, WrongType) else type(exc).__name__)
                continue
            out.append(activity)
            self._digests[activity.id] = digest(item)
            with self._lock:
                if hand:
                    self._handed[activity.id] = self._digests[activity.id]
                if self._newest is None or activity.updated_at > self._newest:
                    self._newest = activity.updated_at
        if mark_gone:
            self.markers.gone(a.id for a in out if a.deleted)
        return out, moved

    def _list(self, params: Mapping[str, Any]) -> tuple[list[Any], str | None]:
        answer = self.http.get(ACTIVITIES, {**params, "include_fields": "attendees"})
        data = answer.data if isinstance(answer.data, list) else []
        next_page = answer.additional.get("next_cursor")
        return data, next_page if isinstance(next_page, str) and next_page else None

    def _by_ids(self, ids: Sequence[int]) -> list[Any]:
        """The activities ``ids`` as Pipedrive has them, deleted ones included (those the
        list leaves out are read one by one); purged ones are absent."""
        found: dict[int, Any] = {}
        for start in range(0, len(ids), MAX_IDS):
            chunk = ids[start:start + MAX_IDS]
            rows, _ = self._list({"ids": ",".join(map(str, chunk)), "limit": MAX_IDS})
            found.update({r["id"]: r for r in rows
                          if isinstance(r, Mapping) and isinstance(r.get("id"), int)})
        for activity_id in ids:
            if activity_id not in found:
                raw = self._get_raw(activity_id)
                if raw is not None:
                    found[activity_id] = raw
        return [found[i] for i in ids if i in found]

    def _get_raw(self, activity_id: int) -> Any:
        try:
            return self.http.get(f"{ACTIVITIES}/{activity_id}",
                                 {"include_fields": "attendees"}, key=activity_id).data
        except NotFound:
            return None

    def changes(self, cursor: str | None, *, owner_id: int, limit: int = 1000
                ) -> SourceChanges:
        position = Cursor.decode(cursor)
        # The engine kept the cursor that showed these: the marker rows may forget them.
        self.markers.told_moved(position.moved, owner_id)
        self.markers.gone(position.gone)
        params: dict[str, Any] = {"owner_id": owner_id, "limit": max(1, min(limit, MAX_LIMIT)),
                                  "sort_by": "update_time", "sort_direction": "asc"}
        since = position.updated_since()
        if since is not None:
            params["updated_since"] = since
        if position.page is not None:
            params["cursor"] = position.page
        try:
            rows, next_page = self._list(params)
        except InvalidInput:
            if position.page is None:
                raise
            # Pipedrive no longer takes its cursor: list from the high-water mark again.
            position = Cursor(position.since, position.seen)
            params.pop("cursor")
            params.pop("updated_since", None)
            if position.since is not None:
                params["updated_since"] = position.since
            rows, next_page = self._list(params)
        listed = [r for r in rows if isinstance(r, Mapping) and isinstance(r.get("id"), int)]
        keyed = []
        for row in listed:
            try:
                keyed.append(Row(row["id"], stamp(parse_stamp(row.get("update_time"))),
                                 digest(row)))
            except WrongType:
                log.warning("pipedrive: activity %s has no usable update_time", row["id"])
        fresh_ids, after = advance(position, keyed, next_page)
        fresh = set(fresh_ids)
        activities, moved = self._activities([r for r in listed if r["id"] in fresh])
        items: list[Activity | Tombstone] = list(activities)
        handed = {a.id for a in activities if a.id in moved and a.owner_id == owner_id}
        if next_page is None:
            found = self._reconcile(owner_id, {a.id for a in activities})
            items.extend(found)
            after = replace(after, moved=tuple(sorted({i.id for i in found})),
                            gone=tuple(sorted({i.id for i in found if isinstance(i, Tombstone)
                                               or i.deleted})))
        return SourceChanges(items, after.encode(), next_page is not None, frozenset(handed))

    def _reconcile(self, owner_id: int, emitted: set[int]) -> list[Activity | Tombstone]:
        """Deleted, purged and handed-over activities the list did not show (see the
        module docstring). They are shown again until the cursor after them comes back
        (:meth:`changes` then tells the marker rows): once, unless the cycle that got
        them ended before keeping that cursor."""
        out: list[Activity | Tombstone] = []
        unseen = [i for i in self.markers.unseen(owner_id, self.settings.reconcile_after,
                                                 self.settings.reconcile_batch)
                  if i not in emitted]
        if unseen:
            raw = self._by_ids(unseen)
            now, _ = self._activities(raw, hand=False, mark_gone=False)
            uids = self.markers.uids_of(unseen)
            # Purged: absent from Pipedrive's answer. An item it sent that could not be
            # mapped (skipped and logged by _activities) is there, and never a deletion.
            present = {r["id"] for r in raw}
            purged = [i for i in unseen if i not in present]
            out.extend(Tombstone(i, uids[i]) for i in purged if i in uids)
            out.extend(a for a in now if a.deleted or a.owner_id != owner_id)
            # The read just made counts as seeing them: until the cursor after them comes
            # back, the deletions are asked about first again, not after reconcile_after.
            self.markers.check_soon(a.id for a in now if a.deleted)
            emitted |= {item.id for item in out}
        moved = [i for i in self.markers.moved_away(owner_id, MAX_IDS) if i not in emitted]
        if moved:
            now, _ = self._activities(self._by_ids(moved), hand=False, mark_gone=False)
            out.extend(a for a in now if a.owner_id != owner_id or a.deleted)
            # Back with this owner (handed away and back): nothing to show, nothing to keep.
            self.markers.told_moved([i for i in moved if i not in {a.id for a in out}],
                                    owner_id)
        with self._lock:
            self._handed.update({a.id: self._digests[a.id] for a in out
                                 if isinstance(a, Activity) and a.id in self._digests})
        return out

    def due_between(self, owner_id: int, start: date, end: date) -> Sequence[Activity]:
        # The list has no due-date filter: read the owner's activities latest due first
        # and stop once past the start (a UTC date is at most a day from the owner's).
        params: dict[str, Any] = {"owner_id": owner_id, "limit": MAX_LIMIT,
                                  "sort_by": "due_date", "sort_direction": "desc"}
        earliest = (start - timedelta(days=1)).isoformat()
        latest = (end + timedelta(days=1)).isoformat()
        found: list[Activity] = []
        while True:
            rows, next_page = self._list(params)
            dated = [r for r in rows if isinstance(r, Mapping) and isinstance(r.get("due_date"),
                                                                              str)]
            activities, _ = self._activities(
                [r for r in dated if earliest <= r["due_date"] <= latest])
            found.extend(a for a in activities if not a.deleted and a.due_date is not None
                         and start <= a.due_date <= end)
            if next_page is None or (dated and dated[-1]["due_date"] < earliest):
                return sorted(found, key=lambda a: (a.due_date or start, a.id))
            params["cursor"] = next_page

    def get(self, activity_id: int) -> Activity | None:
        raw = self._get_raw(activity_id)
        if raw is None:
            return None
        activities, _ = self._activities([raw])
        return activities[0] if activities else None

    def notes(self, activity_ids: Sequence[int]) -> Mapping[int, str]:
        """activity id -> its note as text (:class:`~syncd.crm.source.NoteReader`), for
        the privacy audit; one request per :data:`MAX_IDS` activities."""
        ids = sorted(set(activity_ids))
        found: dict[int, str] = {}
        for start in range(0, len(ids), MAX_IDS):
            chunk = ids[start:start + MAX_IDS]
            found.update(self.http.notes(ACTIVITIES, {"ids": ",".join(map(str, chunk)),
                                                      "limit": MAX_IDS}))
        return found

    def get_many(self, ids: Sequence[int]) -> Mapping[int, Activity]:
        activities, _ = self._activities(self._by_ids(sorted(set(ids))))
        return {a.id: a for a in activities}

    def find(self, marker: str) -> Activity | None:
        row = self.markers.by_uid(marker)
        if row is None:
            return None
        if row.activity_id is None and row.pending:
            self._recover(marker)
            row = self.markers.by_uid(marker)
        if row is None or row.activity_id is None:
            return None
        return self.get(row.activity_id)

    def deletions_hinted(self, activity_ids: Sequence[int]) -> None:
        """A webhook said these were deleted: the next reconciliation asks about them first."""
        self.markers.check_soon(activity_ids)

    def _recover(self, marker: str) -> None:
        """Read the owner's activities changed since a pending import's floor: if its POST
        went out, the first read of that activity takes the import's marker."""
        row = self.markers.by_uid(marker)
        if row is None or row.owner_id is None:
            return
        params: dict[str, Any] = {"owner_id": row.owner_id, "limit": MAX_LIMIT,
                                  "sort_by": "update_time", "sort_direction": "asc"}
        if row.floor is not None:
            params["updated_since"] = stamp(datetime.fromisoformat(row.floor))
        while True:
            rows, next_page = self._list(params)
            self._activities(rows, hand=False)
            if next_page is None:
                return
            params["cursor"] = next_page

    # --- writing ----------------------------------------------------------------------------

    def write(self, ops: Sequence[SourceOp]) -> list[SourceResult]:
        results = []
        for op in ops:
            try:
                results.append(self._write_one(op))
            except SyncdError as exc:
                results.append(SourceResult(error=exc))
        return results

    def _write_one(self, op: SourceOp) -> SourceResult:
        if isinstance(op, ImportActivity):
            return self._import(op)
        current = self._checked(op.activity_id,
                                base=op.base if isinstance(op, ApplyChanges) else None)
        if isinstance(op, RemoveActivity):
            self.http.request("DELETE", f"{ACTIVITIES}/{op.activity_id}", key=op.activity_id)
            with self._lock:
                self._handed.pop(op.activity_id, None)
            return SourceResult()
        assert isinstance(op, ApplyChanges)
        body = write_body(op.fields, current.owner_tz, current_date=current.due_date,
                          current_time=current.due_time)
        if not body:
            return SourceResult(current)
        answer = self.http.request("PATCH", f"{ACTIVITIES}/{op.activity_id}", json=body,
                                   key=op.activity_id)
        failpoint("pipedrive_after_patch")
        activities, _ = self._activities([answer.data])
        if not activities:
            return SourceResult(self.get(op.activity_id))
        return SourceResult(activities[0])

    def _checked(self, activity_id: int, *, base: Activity | None = None) -> Activity:
        """The activity as it is now, read just before a write; refused when it changed
        since the engine got it (read-check-write): when it is no longer ``base``, the
        activity the engine planned against, or without one, when its digest is no longer
        the one this source last handed out."""
        with self._lock:
            handed = self._handed.get(activity_id)
        raw = self._get_raw(activity_id)
        activities, _ = self._activities([raw] if raw is not None else [], hand=False)
        if not activities or activities[0].deleted:
            raise NotFound(kind="activity", key=activity_id)
        current = activities[0]
        if base is not None:
            if current != base:
                raise ActivityChanged(activity_id=activity_id)
        elif handed is not None and self._digests.get(activity_id) != handed:
            raise ActivityChanged(activity_id=activity_id)
        return current

    def _import(self, op: ImportActivity) -> SourceResult:
        existing = self.markers.by_uid(op.import_uid)
        if existing is not None:
            found = self.find(op.import_uid)
            if found is not None:
                return SourceResult(found)
            if existing.activity_id is not None:  # imported once, purged since
                raise NotFound(kind="activity", key=existing.activity_id)
        if op.type not in self._types() and op.type not in self._types(force=True):
            raise InvalidInput(field="type", value=op.type,
                               reason="is not an active activity type in Pipedrive")
        users = self._load_users()
        if op.owner_id not in users:
            raise InvalidInput(field="owner_id", value=op.owner_id,
                               reason="is not a Pipedrive user of this company")
        zone = users[op.owner_id].time_zone
        body = write_body({k: v for k, v in op.fields.items()
                           if k not in ("type", "owner_id")}, zone)
        body.update({"type": op.type, "owner_id": op.owner_id})
        body.setdefault("subject", op.type)
        fingerprint = import_fingerprint(body, op.owner_id)
        if existing is None:
            with self._lock:
                floor = (self._newest - FLOOR_MARGIN).isoformat() if self._newest else None
            if not self.markers.intend(op.import_uid, op.owner_id, fingerprint, floor):
                return self._import(op)  # another writer recorded it first: look again
        failpoint("pipedrive_before_post")
        try:
            answer = self.http.request("POST", ACTIVITIES, json=body)
        except InvalidInput:
            self.markers.abandon(op.import_uid)  # refused: nothing was created
            raise
        failpoint("pipedrive_after_post")
        data = answer.data
        if not isinstance(data, Mapping) or not isinstance(data.get("id"), int):
            raise InvalidInput(field="activity", value=None,
                               reason="Pipedrive's answer to the POST has no activity id")
        self.markers.created(op.import_uid, data["id"])
        activities, _ = self._activities([data])
        if not activities:
            return SourceResult(self.get(data["id"]), created=True)
        return SourceResult(activities[0], created=True)


def open_pipedrive(options: Mapping[str, Any], db: Database, *,
                   budget: Budget | None = None,
                   session: requests.Session | None = None,
                   default_zone: str = "UTC", timeout: float = DEFAULT_TIMEOUT
                   ) -> PipedriveSource:
    """The source for a validated ``[crm]`` table of kind ``pipedrive``; ``timeout``:
    seconds a request waits for Pipedrive's answer.

    Secrets are resolved here, when the source is built, never at config time.
    """
    company = str(options["company_domain"])
    web_url = f"https://{company}.pipedrive.com"
    session = pipedrive_session(session)
    auth: ApiToken | OAuthTokens
    if options.get("api_token") is not None:
        token = _secret(options["api_token"])
        auth, token_key = ApiToken(token), token_key_of(token)
    else:
        token_key = f"oauth:{options['oauth_client_id']}"  # the app's grant, not a secret
        auth = OAuthTokens(str(options["oauth_client_id"]),
                           _secret(options["oauth_client_secret"]),
                           _secret(options["oauth_refresh_token"]),
                           token_url=str(options.get("token_url") or TOKEN_URL),
                           session=session)
    # With OAuth the token answer names the company's api_domain (learnt on first use);
    # an API token goes to the company's own address.
    base = options.get("api_url") or (None if isinstance(auth, OAuthTokens) else web_url)
    if budget is None:
        # One count per company, shared with every account and replica (through db).
        limits = Limits.for_plan(str(options.get("plan", "lite")), int(options.get("seats", 1)),
                                 oauth=isinstance(auth, OAuthTokens),
                                 daily_tokens=options.get("daily_tokens"))
        budget = PipedriveBudget(BudgetLedger(db), company, limits, token_key)
    http = PipedriveHttp(base, auth, budget=budget, session=session, timeout=timeout)
    settings = Settings(company=company, web_url=web_url, default_zone=default_zone,
                        reconcile_after=timedelta(hours=int(options.get("reconcile_hours", 6))))
    return PipedriveSource(http, MarkerStore(db, company), settings)


def _secret(value: Any) -> str:
    return value.resolve() if hasattr(value, "resolve") else str(value)
