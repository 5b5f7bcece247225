"""State of the Pipedrive emulator: users, activity types, activities and what they link to.

Every read and write takes the user acting (the token's owner) so visibility is enforced
in one place: a user sees their own activities, those of the owners in ``User.sees``, and an
admin sees all. Every change is announced to ``change_listeners`` (webhooks) with the action,
the activity after the change (``None`` for a delete), the changed fields' previous values
and the user who made it.

Listing rules (``list_activities``): ``updated_since`` is inclusive and ``updated_until``
exclusive on the seconds-precision ``update_time``; ``ids`` are at most 100 and invisible or
missing ids are simply absent; deleted activities appear only when ``list_deleted`` is on
(the reference leaves it undocumented, so the connector must work both ways); ``limit``
defaults to 100 and may not exceed 500; cursors are keyset cursors (see ``Cursor``).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .pipedrive_model import (
    DEFAULT_TYPES,
    ActivityType,
    Cursor,
    JsonDict,
    PipedriveClock,
    User,
    bad_request,
    forbidden,
    new_activity,
    not_found,
    parse_rfc3339,
    present,
    v2_time,
    validate_fields,
)

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_IDS = 100
PURGE_AFTER = 30 * 86400
SORT_KEYS = ("id", "update_time", "add_time", "due_date")
Params = dict[str, list[str]]


@dataclass(frozen=True)
class Change:
    """One change as webhooks see it."""

    action: str  # create | change | delete
    activity_id: int
    owner_id: int
    current: JsonDict | None
    previous: JsonDict | None
    user_id: int
    change_source: str  # api | app


class PipedriveStore:
    """The company's data; thread-safe (one lock)."""

    def __init__(self, clock: PipedriveClock, company_id: int = 7001,
                 company_domain: str = "acme") -> None:
        self.clock = clock
        self.company_id = company_id
        self.company_domain = company_domain
        self.lock = threading.RLock()
        self.users: dict[int, User] = {}
        self.types: dict[str, ActivityType] = {}
        self.activities: dict[int, JsonDict] = {}
        self.persons: dict[int, JsonDict] = {}
        self.deals: dict[int, JsonDict] = {}
        self.orgs: dict[int, JsonDict] = {}
        self.list_deleted = False
        """Whether ``GET /api/v2/activities`` lists deleted activities (``is_deleted: true``)."""
        self.change_listeners: list[Callable[[Change], None]] = []
        self._created = clock.now()
        self._next_id = 1
        for name, key, icon in DEFAULT_TYPES:
            self.add_type(name, key, icon)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # ---- setup --------------------------------------------------------------------------------

    def add_user(self, name: str, email: str, *, timezone_name: str = "Europe/Berlin",
                 is_admin: bool = False) -> User:
        with self.lock:
            user = User(self._new_id(), name, email, timezone_name, is_admin)
            self.users[user.id] = user
            return user

    def add_type(self, name: str, key: str, icon: str = "task", active: bool = True
                 ) -> ActivityType:
        with self.lock:
            kind = ActivityType(self._new_id(), name, key, icon, active)
            self.types[key] = kind
            return kind

    def add_person(self, name: str, email: str | None = None, owner_id: int | None = None,
                   org_id: int | None = None) -> int:
        """A contact person (v2 shape); ``email`` becomes the primary work address."""
        with self.lock:
            pid = self._new_id()
            first, _, last = name.partition(" ")
            self.persons[pid] = {
                **self._linked_base(pid, owner_id), "name": name, "first_name": first,
                "last_name": last or None, "org_id": org_id, "phones": [],
                "emails": ([{"value": email, "primary": True, "label": "work"}]
                           if email else []),
            }
            return pid

    def add_deal(self, title: str, owner_id: int | None = None, person_id: int | None = None,
                 org_id: int | None = None) -> int:
        """A deal (v2 shape, open)."""
        with self.lock:
            did = self._new_id()
            self.deals[did] = {**self._linked_base(did, owner_id), "title": title,
                               "person_id": person_id, "org_id": org_id, "status": "open",
                               "value": 0, "currency": "EUR"}
            return did

    def add_org(self, name: str, owner_id: int | None = None) -> int:
        """An organization (v2 shape)."""
        with self.lock:
            oid = self._new_id()
            self.orgs[oid] = {**self._linked_base(oid, owner_id), "name": name,
                              "address": None}
            return oid

    def _linked_base(self, item_id: int, owner_id: int | None) -> JsonDict:
        stamp = v2_time(self.clock.now())
        return {"id": item_id, "owner_id": owner_id, "add_time": stamp, "update_time": stamp,
                "is_deleted": False, "visible_to": 3}

    def linked(self, kind: str, item_id: int) -> JsonDict:
        """``GET /api/v2/{persons,deals,organizations}/{id}`` [emulator choice: visible to the
        whole company, as ``visible_to: 3`` says]."""
        table = {"persons": self.persons, "deals": self.deals, "organizations": self.orgs}[kind]
        with self.lock:
            item = table.get(item_id)
            if item is None:
                raise not_found({"persons": "Person", "deals": "Deal"}.get(kind, "Organization"))
            return copy.deepcopy(item)

    def persons_by_ids(self, params: Params) -> tuple[list[JsonDict], str | None]:
        """``GET /api/v2/persons`` with ``ids``, ``limit`` and ``cursor`` (id order)."""
        query = _ListQuery.parse({k: v for k, v in params.items()
                                  if k in ("ids", "limit", "cursor")})
        with self.lock:
            rows = sorted((p for p in self.persons.values()
                           if query.ids is None or p["id"] in query.ids), key=lambda p: p["id"])
        if query.cursor is not None:
            rows = [r for r in rows if r["id"] > query.cursor.last_id]
        page, rest = rows[:query.limit], rows[query.limit:]
        cursor = (Cursor("id", "asc", page[-1]["id"], page[-1]["id"]).encode()
                  if rest and page else None)
        return copy.deepcopy(page), cursor

    def user(self, user_id: int) -> User:
        with self.lock:
            return self.users[user_id]

    # ---- v1 reads -----------------------------------------------------------------------------

    def users_v1(self, me: User) -> list[JsonDict]:
        with self.lock:
            return [u.v1(self._created, self.clock.now(), u.id == me.id)
                    for u in self.users.values()]

    def user_v1(self, me: User, user_id: int) -> JsonDict:
        with self.lock:
            other = self.users.get(user_id)
            if other is None:
                raise not_found("User")
            return other.v1(self._created, self.clock.now(), other.id == me.id)

    def me_v1(self, me: User) -> JsonDict:
        body = me.v1(self._created, self.clock.now(), True)
        body.update({"company_id": self.company_id, "company_name": "Acme",
                     "company_domain": self.company_domain, "company_country": "DE",
                     "language": {"language_code": "en", "country_code": "US"}})
        return body

    def types_v1(self) -> list[JsonDict]:
        with self.lock:
            return [t.v1(self._created) for t in self.types.values()]

    # ---- activities: reads --------------------------------------------------------------------

    def _purge(self) -> None:
        cutoff = self.clock.now() - PURGE_AFTER
        for aid in [a for a, item in self.activities.items()
                    if item["is_deleted"] and item["_deleted_at"] < cutoff]:
            del self.activities[aid]

    def _visible(self, me: User, aid: int) -> JsonDict:
        item = self.activities.get(aid)
        if item is None or not me.may_see(item["owner_id"]):
            raise not_found()
        return item

    def get(self, me: User, aid: int, include_attendees: bool) -> JsonDict:
        """``GET /api/v2/activities/{id}``; a deleted activity is returned with
        ``is_deleted: true`` until purged [emulator choice]."""
        with self.lock:
            self._purge()
            return present(self._visible(me, aid), include_attendees)

    def list_activities(self, me: User, params: Params) -> tuple[list[JsonDict], str | None]:
        """``GET /api/v2/activities``: the page and the next cursor (``None`` on the last)."""
        query = _ListQuery.parse(params)
        with self.lock:
            self._purge()
            rows = [a for a in self.activities.values()
                    if me.may_see(a["owner_id"]) and query.matches(a, self.list_deleted)]
        reverse = query.direction == "desc"
        rows.sort(key=query.sort_key, reverse=reverse)
        if query.cursor is not None:
            mark = (query.cursor.key, query.cursor.last_id)
            rows = [r for r in rows
                    if (query.sort_key(r) < mark if reverse else query.sort_key(r) > mark)]
        page, rest = rows[:query.limit], rows[query.limit:]
        next_cursor = None
        if rest and page:
            key, last_id = query.sort_key(page[-1])
            next_cursor = Cursor(query.sort_by, query.direction, key, last_id).encode()
        return [present(r, query.attendees) for r in page], next_cursor

    # ---- activities: writes -------------------------------------------------------------------

    def _check_refs(self, fields: JsonDict) -> None:
        if "type" in fields:
            kind = self.types.get(fields["type"])
            if kind is None or not kind.active_flag:
                raise bad_request(f"Activity type '{fields['type']}' does not exist or is "
                                  "not active")
        owner = fields.get("owner_id")
        if owner is not None and owner not in self.users:
            raise bad_request(f"User {owner} not found")
        for key, table in (("person_id", self.persons), ("deal_id", self.deals),
                           ("org_id", self.orgs)):
            value = fields.get(key)
            if value is not None and value not in table:
                raise bad_request(f"{key} {value} not found")
        for participant in fields.get("participants") or []:
            if participant["person_id"] not in self.persons:
                raise bad_request(f"person_id {participant['person_id']} not found")

    def create(self, me: User, body: JsonDict, source: str = "api") -> JsonDict:
        """``POST /api/v2/activities``."""
        fields = validate_fields(body)
        with self.lock:
            fields.setdefault("type", "task")
            self._check_refs(fields)
            owner = fields.get("owner_id") or me.id
            if not me.may_see(owner):
                raise forbidden()
            fields["owner_id"] = owner
            if not fields.get("subject"):
                fields["subject"] = self.types[fields["type"]].name
            if fields.get("person_id") is None and fields.get("participants"):
                primary = [p for p in fields["participants"] if p["primary"]]
                fields["person_id"] = primary[0]["person_id"]
            now = self.clock.now()
            item = new_activity(self._new_id(), fields, me.id, now)
            item["creator_user_id"] = me.id
            item["_deleted_at"] = 0.0
            item["_updated"] = int(now)  # update_time as a number, for the filters
            self.activities[item["id"]] = item
            result = present(item, True)
            self._announce(Change("create", item["id"], owner, result, None, me.id, source))
            return result

    def update(self, me: User, aid: int, body: JsonDict, source: str = "api") -> JsonDict:
        """``PATCH /api/v2/activities/{id}``: only the fields given change; ``update_time``
        moves when at least one value differs [emulator choice: a no-op PATCH keeps it]."""
        fields = validate_fields(body)
        with self.lock:
            item = self._visible(me, aid)
            if item["is_deleted"]:
                raise not_found()
            self._check_refs(fields)
            if "owner_id" in fields and fields["owner_id"] is None:
                raise bad_request("owner_id cannot be null")
            if "owner_id" in fields and not me.may_see(fields["owner_id"]):
                raise forbidden()
            previous = {k: copy.deepcopy(item[k]) for k, v in fields.items() if item[k] != v}
            if previous:
                now = self.clock.now()
                previous["update_time"] = item["update_time"]
                item.update(fields)
                if "done" in previous:
                    previous["marked_as_done_time"] = item["marked_as_done_time"]
                    item["marked_as_done_time"] = v2_time(now) if item["done"] else None
                item["update_time"], item["_updated"] = v2_time(now), int(now)
                result = present(item, True)
                self._announce(Change("change", aid, item["owner_id"], result, previous,
                                      me.id, source))
            return present(item, True)

    def delete(self, me: User, aid: int, source: str = "api") -> int:
        """``DELETE /api/v2/activities/{id}``: marks deleted (purged after 30 days)."""
        with self.lock:
            item = self._visible(me, aid)
            if item["is_deleted"]:
                raise not_found()
            before = present(item, True)
            now = self.clock.now()
            item["is_deleted"] = True
            item["_deleted_at"] = now
            item["update_time"], item["_updated"] = v2_time(now), int(now)
            self._announce(Change("delete", aid, item["owner_id"], None, before, me.id,
                                  source))
            return aid

    def _announce(self, change: Change) -> None:
        for listener in list(self.change_listeners):
            listener(change)

    def stored(self, aid: int) -> JsonDict:
        """A copy of an activity with every field (tests), even when deleted."""
        with self.lock:
            return present(self.activities[aid], True)


# ---- list parameters --------------------------------------------------------------------------

@dataclass
class _ListQuery:
    owner_id: int | None
    deal_id: int | None
    lead_id: str | None
    person_id: int | None
    org_id: int | None
    done: bool | None
    ids: set[int] | None
    since: float | None
    until: float | None
    sort_by: str
    direction: str
    limit: int
    cursor: Cursor | None
    attendees: bool

    @classmethod
    def parse(cls, params: Params) -> _ListQuery:
        def one(name: str) -> str | None:
            values = params.get(name)
            return values[-1] if values else None

        def integer(name: str, low: int = 1) -> int | None:
            text = one(name)
            if text is None or text == "":
                return None
            try:
                value = int(text)
            except ValueError as exc:
                raise bad_request(f"{name} must be an integer") from exc
            if value < low:
                raise bad_request(f"{name} must be at least {low}")
            return value

        if one("filter_id") is not None:
            raise bad_request("filter_id is not supported by the emulator")
        done_text = one("done")
        done: bool | None = None
        if done_text is not None:
            if done_text.lower() not in ("true", "false", "1", "0"):
                raise bad_request("done must be a boolean")
            done = done_text.lower() in ("true", "1")
        ids: set[int] | None = None
        if one("ids"):
            try:
                ids = {int(x) for x in str(one("ids")).split(",") if x.strip()}
            except ValueError as exc:
                raise bad_request("ids must be comma-separated integers") from exc
            if len(ids) > MAX_IDS:
                raise bad_request(f"ids accepts at most {MAX_IDS} ids")
        since_text, until_text = one("updated_since"), one("updated_until")
        sort_by = one("sort_by") or "id"
        direction = one("sort_direction") or "asc"
        if sort_by not in SORT_KEYS:
            raise bad_request(f"sort_by must be one of {', '.join(SORT_KEYS)}")
        if direction not in ("asc", "desc"):
            raise bad_request("sort_direction must be asc or desc")
        limit = integer("limit") or DEFAULT_LIMIT
        if limit > MAX_LIMIT:
            raise bad_request(f"limit must not exceed {MAX_LIMIT}")
        cursor = Cursor.decode(str(one("cursor"))) if one("cursor") else None
        if cursor is not None and (cursor.sort_by, cursor.direction) != (sort_by, direction):
            raise bad_request("The cursor belongs to another sort order")
        fields = {f for f in (one("include_fields") or "").split(",") if f}
        if fields - {"attendees"}:
            raise bad_request(f"include_fields: unknown field(s) {sorted(fields - {'attendees'})}")
        return cls(owner_id=integer("owner_id"), deal_id=integer("deal_id"),
                   lead_id=one("lead_id"), person_id=integer("person_id"),
                   org_id=integer("org_id"), done=done, ids=ids,
                   since=parse_rfc3339(since_text, "updated_since") if since_text else None,
                   until=parse_rfc3339(until_text, "updated_until") if until_text else None,
                   sort_by=sort_by, direction=direction, limit=limit, cursor=cursor,
                   attendees="attendees" in fields)

    def matches(self, item: JsonDict, list_deleted: bool) -> bool:
        if item["is_deleted"] and not list_deleted:
            return False
        for name in ("owner_id", "deal_id", "lead_id", "person_id", "org_id", "done"):
            wanted = getattr(self, name)
            if wanted is not None and item[name] != wanted:
                return False
        if self.ids is not None and item["id"] not in self.ids:
            return False
        updated = item["_updated"]
        if self.since is not None and updated < self.since:
            return False
        return self.until is None or updated < self.until

    def sort_key(self, item: JsonDict) -> tuple[Any, int]:
        value = item[self.sort_by]
        # Dateless activities sort first; "" keeps the tuple comparable and JSON-encodable.
        return (value if value is not None else "", item["id"])
