"""The engine with the CalDAV connector against a real Radicale or Xandikos server.

With ``proxied=True`` the connector reaches the server through a :class:`RecordingProxy`,
so a test sees every request the server received; the world's own look at the calendar
(``dav()``, ``objects()``, the owner's edits) goes straight to the server and is not
counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import caldav
import icalendar

from connectors.base import CalendarConnector, WriteOp, WriteResult
from connectors.caldav import CalDAVCalendar
from syncd.config import AccountConfig
from syncd.model import Activity
from syncd.store.state import StateStore
from syncd_testkit.servers import DavServer, RecordingProxy
from syncd_testkit.world import OWNER_TZ, CalDAVWorld, Sent, open_store
from tests.conftest import fresh_calendar

WRITE_METHODS = frozenset({"PUT", "DELETE", "POST", "PATCH", "MKCALENDAR", "MKCOL",
                           "PROPPATCH", "MOVE", "COPY"})


class GuardedCalendar(CalDAVCalendar):
    """Counts writes, and fails the test if one happens while ``forbid_writes`` is set."""

    forbid_writes = False
    writes = 0

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        assert not self.forbid_writes, f"unexpected writes: {ops}"
        self.writes += len(ops)
        return super().write(ops)


@dataclass(kw_only=True)
class DavWorld(CalDAVWorld):
    server: DavServer
    calendar_url: str  # on the server itself, not through the proxy
    user: str
    connector: GuardedCalendar
    proxy: RecordingProxy | None = None

    idle_requests: ClassVar[tuple[str, ...]] = ("REPORT",)  # one sync-collection

    def cycle_connector(self) -> CalendarConnector:
        return self.connector

    def add(self, subject: str = "Call", day: int = 10, hour: int | None = 9, **values: Any
            ) -> Activity:
        values.setdefault("duration_minutes", 45)
        return super().add(subject, day, hour, **values)

    def dav(self) -> Any:
        client = caldav.DAVClient(url=self.server.url, username=self.user, password="x")
        return client.calendar(url=self.calendar_url)

    def objects(self) -> dict[str, tuple[str, icalendar.Event]]:
        """href -> (etag, VEVENT) as the server holds them."""
        out = {}
        for obj in self.dav().get_objects_by_sync_token(load_objects=True).objects:
            cal = icalendar.Calendar.from_ical(obj.data)
            out[str(obj.url.path)] = ((obj.props or {}).get("{DAV:}getetag"),
                                      next(iter(cal.walk("VEVENT"))))
        return out

    # ---- the contract's view ----------------------------------------------------------------

    def sent(self) -> list[Sent]:
        assert self.proxy is not None, "make the world with proxied=True"
        return [Sent(r.method, f"{r.method} {r.path}\n{r.headers}\n"
                     + r.body.decode("utf-8", "replace"), r.method in WRITE_METHODS)
                for r in self.proxy.requests]

    def forget_sent(self) -> None:
        assert self.proxy is not None, "make the world with proxied=True"
        self.proxy.requests.clear()

    def _object(self, activity_id: int) -> Any:
        """The activity's calendar object, read straight from the server."""
        path = unquote(urlsplit(self.event_id_of(activity_id)).path)
        for obj in self.dav().get_objects_by_sync_token(load_objects=True).objects:
            if unquote(str(obj.url.path)) == path:
                return obj
        raise KeyError(path)

    def _vevent(self, activity_id: int) -> icalendar.Event:
        cal = icalendar.Calendar.from_ical(self._object(activity_id).data)
        return next(iter(cal.walk("VEVENT")))

    def user_edit(self, activity_id: int, title: str) -> None:
        obj = self._object(activity_id)
        cal = icalendar.Calendar.from_ical(obj.data)
        vevent = next(iter(cal.walk("VEVENT")))
        vevent["SUMMARY"] = title
        obj.data = cal.to_ical().decode()
        obj.save()

    def user_delete(self, activity_id: int) -> None:
        self._object(activity_id).delete()

    def event_title(self, activity_id: int) -> str:
        return str(self._vevent(activity_id)["SUMMARY"])

    def event_location(self, activity_id: int) -> str:
        return str(self._vevent(activity_id).get("LOCATION", ""))

    def markers(self) -> Counter[str]:
        return Counter(str(vevent.get("X-SYNCD-ID")) for _, vevent in self.objects().values())


def make_dav_world(tmp_path: Path, server: DavServer, *, proxied: bool = False,
                   **account: Any) -> DavWorld:
    """A world on a fresh calendar of ``server`` (not importing its events unless told)."""
    user, calendar_url = fresh_calendar(server)
    db, store, owner_id = open_store(tmp_path, user)
    proxy = RecordingProxy(server.port).start() if proxied else None
    url = proxy.url if proxy else server.url
    cfg = AccountConfig(name="dav", provider="caldav", owner=user,
                        calendar=calendar_url.replace(server.url, url),
                        auth={"url": url, "username": user}, **account)
    return DavWorld(db=db, store=store, state=StateStore(db), account=cfg, owner_id=owner_id,
                    connector=GuardedCalendar(cfg, owner_tz=OWNER_TZ), server=server,
                    calendar_url=calendar_url, user=user, proxy=proxy)


def close_world(world: DavWorld) -> None:
    world.connector.close()
    if world.proxy is not None:
        world.proxy.stop()

