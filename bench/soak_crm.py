"""The soak's CRM side: a salesperson editing activities, and the end state read back.

:class:`BuiltinCrm` edits syncd's own activity store (the database file the ``syncd sync``
children use, between their runs, as the CLI or the import would). :class:`PipedriveCrm`
edits the Pipedrive emulator as its users would in the web app (no API request of syncd's
is involved, so nothing of it passes the fault proxy). Both read the end state as plain
data for :func:`bench.soak_model.judge`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bench.backends import TZ
from bench.soak_model import CrmItem, tag_in
from syncd.crm.builtin.activities import ActivityStore
from syncd.crm.builtin.views import ActivityFilter
from syncd.model import Activity, Guest, project_activity
from syncd.store.db import Database
from syncd_testkit.emulators.pipedrive import PipedriveClock, PipedriveEmulator
from syncd_testkit.emulators.pipedrive_model import JsonDict, User


class Crm(Protocol):
    """What the driver does in the CRM, by activity id."""

    def add_users(self, owners: Sequence[str]) -> None: ...

    def add(self, items: Sequence[Mapping[str, Any]]) -> list[int]:
        """Create activities (``owner`` an e-mail); their ids in order."""

    def edit(self, activity_id: int, **fields: Any) -> Mapping[str, Any]:
        """Change fields (the store's names); returns the projection after (JSON)."""

    def delete(self, activity_id: int) -> None: ...

    def set_done(self, activity_id: int, done: bool) -> None: ...

    def move(self, activity_id: int, owner: str) -> None: ...

    def current(self, activity_id: int) -> Mapping[str, Any] | None:
        """The activity's fields now (due_date, due_time, duration_minutes, guests ...)."""

    def read(self, ids: Sequence[int]) -> dict[int, CrmItem]: ...

    def tagged(self) -> dict[str, list[int]]:
        """Every live activity whose subject carries an item's tag: tag -> ids, oldest
        first (what a user sees listing the CRM; how imports are found and counted)."""

    def close(self) -> None: ...


class BuiltinCrm:
    """syncd's built-in activity store, in the database the children use."""

    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.store = ActivityStore(self.db)
        self.users: dict[str, int] = {}
        self.emails: dict[int, str] = {}

    def add_users(self, owners: Sequence[str]) -> None:
        for owner in owners:
            user = self.store.get_user_by_email(owner)
            uid = user.id if user else self.store.add_user(owner, owner.split("@")[0], TZ)
            self.users[owner], self.emails[uid] = uid, owner

    def add(self, items: Sequence[Mapping[str, Any]]) -> list[int]:
        rows = [{**{k: v for k, v in item.items() if k != "owner"},
                 "owner_id": self.users[item["owner"]]} for item in items]
        return list(self.store.add_activities(rows))

    def edit(self, activity_id: int, **fields: Any) -> Mapping[str, Any]:
        return _projection(self.store.edit_activity(activity_id, **fields))

    def delete(self, activity_id: int) -> None:
        self.store.delete_activity(activity_id)

    def set_done(self, activity_id: int, done: bool) -> None:
        (self.store.mark_done if done else self.store.mark_undone)(activity_id)

    def move(self, activity_id: int, owner: str) -> None:
        self.store.edit_activity(activity_id, owner_id=self.users[owner])

    def current(self, activity_id: int) -> Mapping[str, Any] | None:
        activity = self.store.get_many([activity_id]).get(activity_id)
        return None if activity is None or activity.deleted else _timing(activity)

    def read(self, ids: Sequence[int]) -> dict[int, CrmItem]:
        out: dict[int, CrmItem] = {}
        for first in range(0, len(ids), 500):
            found = self.store.get_many(list(ids[first:first + 500]))
            for activity_id in ids[first:first + 500]:
                activity = found.get(activity_id)
                if activity is None or activity.deleted:
                    out[activity_id] = CrmItem(False)
                    continue
                out[activity_id] = CrmItem(True, self.emails.get(activity.owner_id, "?"),
                                           activity.done, _projection(activity))
        return out

    def tagged(self) -> dict[str, list[int]]:
        return _by_tag((a.id, a.subject)
                       for a in self.store.list_activities(ActivityFilter()) if not a.deleted)

    def close(self) -> None:
        self.db.close()


class PipedriveCrm:
    """A Pipedrive company (the emulator, in this process), edited in its web app.

    Each owner is a Pipedrive user (a seat, in the soak's zone); syncd signs in as a
    separate admin (its integration user, whose API token the config names) and a manager
    (another admin) hands activities from one owner to another, as Pipedrive's
    visibility rules want. Everything else is done by the activity's owner. Pipedrive's own
    names and semantics: ``due_date``/``due_time`` in UTC (wall times in the owner's zone
    here), ``duration`` as ``HH:MM``, ``busy``, ``public_description`` (what guests see:
    syncd's description), ``note`` (the private note, HTML as the web app keeps it),
    ``location.value``, a move as a new ``owner_id``, ``done``, deletes that only mark the
    activity deleted. Guests: a contact person of the company is added as a participant,
    any other address as an attendee.

    The emulator lists deleted activities (``is_deleted: true``; undocumented, a switch of
    the emulator): otherwise syncd learns of a delete only by asking about activities no
    read has shown for ``reconcile_hours`` (at least one hour), which the soak's minutes
    never reach, and every CRM delete would stay in the calendar.
    """

    #: The company's plan; syncd's config says the same so its budget paces to it.
    PLAN = "ultimate"

    def __init__(self, seats: int) -> None:
        self.seats = seats
        self.emu = PipedriveEmulator(clock=PipedriveClock(), plan=self.PLAN, seats=seats)
        self.emu.start()
        self.emu.list_deleted = True
        self.syncd_user = self.emu.add_user("syncd", "syncd@soak.example", timezone_name=TZ,
                                            is_admin=True)
        self.manager = self.emu.add_user("Manager", "manager@soak.example", timezone_name=TZ,
                                         is_admin=True)
        self.users: dict[str, User] = {}
        self.emails: dict[int, str] = {}
        self.persons: dict[str, int] = {}  # a contact's e-mail -> person id

    @property
    def url(self) -> str:
        """The company's API address (``api_domain``)."""
        return self.emu.base_url

    @property
    def token(self) -> str:
        """The API token of syncd's integration user."""
        return self.emu.api_token(self.syncd_user)

    def config(self, api_url: str, token_env: str) -> str:
        """syncd's ``[crm]`` table for this company, reached at ``api_url``."""
        return (f'[crm]\nkind = "pipedrive"\ncompany_domain = "{self.emu.store.company_domain}"'
                f'\napi_token = "env:{token_env}"\napi_url = "{api_url}"\n'
                f'plan = "{self.PLAN}"\nseats = {self.seats}\nallow_insecure_http = true\n')

    def add_users(self, owners: Sequence[str]) -> None:
        for owner in owners:
            user = self.emu.add_user(owner.split("@")[0], owner, timezone_name=TZ)
            self.users[owner], self.emails[user.id] = user, owner

    def add(self, items: Sequence[Mapping[str, Any]]) -> list[int]:
        """New activities; their guests become the company's contact persons (added as
        participants; guests added later are attendees by e-mail)."""
        ids = []
        for item in items:
            for email in item.get("guests") or ():
                if email not in self.persons:
                    self.persons[email] = self.emu.store.add_person(email.split("@")[0], email)
            fields = {k: v for k, v in item.items() if k != "owner"}
            body = {"type": fields.pop("type", "meeting"), **self._body(fields, None)}
            created = self.emu.create_as_user(self.users[item["owner"]], **body)
            ids.append(int(created["id"]))
        return ids

    def edit(self, activity_id: int, **fields: Any) -> Mapping[str, Any]:
        stored = self.emu.activity(activity_id)
        self.emu.edit_as_user(self._owner(stored), activity_id, **self._body(fields, stored))
        activity = self._activity(activity_id)
        return _projection(activity) if activity is not None else {}

    def delete(self, activity_id: int) -> None:
        self.emu.delete_as_user(self._owner(self.emu.activity(activity_id)), activity_id)

    def set_done(self, activity_id: int, done: bool) -> None:
        stored = self.emu.activity(activity_id)
        self.emu.edit_as_user(self._owner(stored), activity_id, done=done)

    def move(self, activity_id: int, owner: str) -> None:
        self.emu.edit_as_user(self.manager, activity_id, owner_id=self.users[owner].id)

    def current(self, activity_id: int) -> Mapping[str, Any] | None:
        activity = self._activity(activity_id)
        return None if activity is None else _timing(activity)

    def read(self, ids: Sequence[int]) -> dict[int, CrmItem]:
        out: dict[int, CrmItem] = {}
        for activity_id in ids:
            activity = self._activity(activity_id)
            out[activity_id] = CrmItem(False) if activity is None else CrmItem(
                True, self.emails.get(activity.owner_id, "?"), activity.done,
                _projection(activity))
        return out

    def tagged(self) -> dict[str, list[int]]:
        with self.emu.store.lock:
            items = [(aid, str(a.get("subject") or "")) for aid, a in
                     self.emu.store.activities.items() if not a.get("is_deleted")]
        return _by_tag(items)

    def close(self) -> None:
        self.emu.stop()

    # ---- Pipedrive's fields ---------------------------------------------------------

    def _owner(self, stored: JsonDict) -> User:
        return self.emu.store.user(int(stored["owner_id"]))

    def _body(self, fields: Mapping[str, Any], stored: JsonDict | None) -> JsonDict:
        """The web app's change for ``fields`` (the built-in store's names, wall times in
        the owner's zone) to the activity as ``stored`` (None: a new one)."""
        body: JsonDict = {}
        for name, value in fields.items():
            if name in ("subject", "busy", "done"):
                body[name] = value
            elif name == "duration_minutes":
                body["duration"] = f"{value // 60:02d}:{value % 60:02d}" if value else None
            elif name == "location":
                body["location"] = {"value": value} if value else None
            elif name == "description":
                body["public_description"] = value or None
            elif name == "note":
                body["note"] = f"<p>{html.escape(value)}</p>" if value else None
            elif name == "guests":
                body.update(self._guests(value))
        if "due_date" in fields or "due_time" in fields:
            day, clock = _local_due(stored) if stored is not None else (None, None)
            day = fields.get("due_date", day)
            clock = fields.get("due_time", clock)
            body["due_date"], body["due_time"] = _utc_due(day, clock)
        return body

    def _guests(self, emails: Sequence[str]) -> JsonDict:
        contacts = [e for e in emails if e in self.persons]
        return {"participants": [{"person_id": self.persons[e], "primary": not k}
                                 for k, e in enumerate(contacts)],
                "attendees": [{"email": e} for e in emails if e not in self.persons]}

    def _activity(self, activity_id: int) -> Activity | None:
        """The activity as syncd's model holds it, read here independently of syncd's
        Pipedrive mapping (so a mistake there shows as a difference)."""
        try:
            item = self.emu.activity(activity_id)
        except KeyError:
            return None
        if item["is_deleted"]:
            return None
        day, clock = _local_due(item)
        owner = self.emails.get(int(item["owner_id"]), "")
        guests = {str(a["email"]).lower() for a in item.get("attendees") or () if a["email"]}
        by_id = {pid: email for email, pid in self.persons.items()}
        guests |= {by_id[p["person_id"]] for p in item["participants"] if p["person_id"] in by_id}
        guests.discard(owner)
        hours, _, minutes = (item["duration"] or "00:00").partition(":")
        return Activity(
            id=activity_id, sync_uid="", owner_id=int(item["owner_id"]), owner_tz=TZ,
            type=item["type"], subject=item["subject"] or "", due_date=day, due_time=clock,
            duration_minutes=int(hours) * 60 + int(minutes),
            busy=item["busy"] if item["busy"] is not None else clock is not None,
            description=(item["public_description"] or "").strip(),
            location=((item["location"] or {}).get("value") or "").strip(),
            guests=tuple(Guest(g) for g in sorted(guests)), done=bool(item["done"]),
            marked_done_at=None, deleted=False, updated_at=utc_now())


def _by_tag(items: Iterable[tuple[int, str]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for activity_id, subject in sorted(items):
        tag = tag_in(subject)
        if tag is not None:
            out.setdefault(tag, []).append(activity_id)
    return out


def _local_due(item: JsonDict) -> tuple[date | None, time | None]:
    """Pipedrive's UTC due date and time as the owner's wall date and time."""
    if not item.get("due_date"):
        return None, None
    day = date.fromisoformat(item["due_date"])
    if not item.get("due_time"):
        return day, None
    hour, _, minute = item["due_time"].partition(":")
    return local_parts(datetime.combine(day, time(int(hour), int(minute)), tzinfo=UTC))


def _utc_due(day: date | None, clock: time | None) -> tuple[str | None, str | None]:
    """A wall date and time in the owner's zone as Pipedrive's UTC ``due_date``/``due_time``."""
    if day is None or clock is None:
        return (day.isoformat() if day else None), None
    utc = datetime.combine(day, clock, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
    return utc.date().isoformat(), utc.strftime("%H:%M")


def _timing(activity: Activity) -> Mapping[str, Any]:
    """What :meth:`Crm.current` answers."""
    return {"due_date": activity.due_date, "due_time": activity.due_time,
            "duration_minutes": activity.duration_minutes,
            "guests": [g.email for g in activity.guests]}


def _projection(activity: Activity) -> Mapping[str, Any]:
    projection = project_activity(activity)
    return projection.to_json() if projection is not None else {}


def local_parts(when: datetime) -> tuple[date, time]:
    """A UTC instant as the owner's wall-clock date and time."""
    local = when.astimezone(ZoneInfo(TZ))
    return local.date(), local.time().replace(tzinfo=None)


def utc_now() -> datetime:
    return datetime.now(UTC)


__all__ = ["BuiltinCrm", "Crm", "PipedriveCrm", "local_parts", "timedelta", "utc_now"]
