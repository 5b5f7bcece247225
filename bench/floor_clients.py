"""Minimal hand-written clients: the fewest requests each provider allows for the job.

Each client does, per calendar, what a sync cycle has to do and nothing more: one change
read (following pages), fetching the content only of items it did not write itself (it
remembers the etag of everything it wrote), then the writes, as cheaply as the provider
allows:

* CalDAV: one request per write (``PUT`` with ``If-None-Match``/``If-Match``, ``DELETE``
  with ``If-Match``), ``concurrency`` of them in flight per calendar; the change read is a
  ``sync-collection`` REPORT for etags, plus one ``calendar-multiget`` for the changed
  items it does not know;
* Google: ``events.list`` with ``syncToken``; writes in batches of 50, one batch at a time
  per calendar, paced under the per-user quota (600 calls per sliding minute);
* Graph: ``calendarView/delta``; writes in ``$batch`` of 20 as four ``dependsOn`` chains
  (the mailbox's 4 concurrent requests), one batch at a time per mailbox.

No retries, no idempotency keys, no merge: this is a floor, not a product.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from bench.backends import TZ
from bench.floor_http import HttpPool

DAV = "{DAV:}"
CAL = "{urn:ietf:params:xml:ns:caldav}"
GOOGLE_BATCH = 50
GOOGLE_USER_QUOTA = 600  # calls per user per sliding minute (providers.md A.5)
GRAPH_BATCH = 20
GRAPH_CHAINS = 4  # the mailbox's concurrent-request limit (providers.md B.5)
MULTIGET_CHUNK = 500


@dataclass
class Spec:
    """One event's content, built from a workload activity."""

    title: str
    start: datetime | date
    end: datetime | date
    busy: bool
    description: str
    location: str

    @classmethod
    def of(cls, item: dict[str, Any]) -> Spec:
        day: date = item["due_date"]
        at: clock | None = item.get("due_time")
        if at is None:
            start: datetime | date = day
            end: datetime | date = day + timedelta(days=1)
        else:
            local = datetime.combine(day, at, tzinfo=ZoneInfo(TZ))
            start = local.astimezone(UTC)
            end = start + timedelta(minutes=item["duration_minutes"])
        return cls(item["subject"], start, end, item["busy"], item.get("description", ""),
                   item.get("location", ""))


@dataclass
class Calendar:
    """What the floor client keeps about one calendar."""

    owner: str
    ref: str
    cursor: str | None = None
    events: dict[int, str] = field(default_factory=dict)  # workload index -> event id
    etags: dict[str, str] = field(default_factory=dict)  # event id -> etag we know
    specs: dict[int, Spec] = field(default_factory=dict)
    fetched: int = 0  # items whose content had to be read


class FloorClient(Protocol):
    def read(self, cal: Calendar) -> None: ...

    def create(self, cal: Calendar, indexes: Sequence[int]) -> None: ...

    def update(self, cal: Calendar, indexes: Sequence[int]) -> None: ...

    def delete(self, cal: Calendar, indexes: Sequence[int]) -> None: ...

    def close(self) -> None: ...


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _fail(what: str, status: int, body: bytes) -> RuntimeError:
    return RuntimeError(f"floor {what}: HTTP {status} {body[:300]!r}")


# --- CalDAV ------------------------------------------------------------------------------


def ical(uid: str, spec: Spec) -> bytes:
    if isinstance(spec.start, datetime) and isinstance(spec.end, datetime):
        when = [f"DTSTART:{_utc(spec.start)}", f"DTEND:{_utc(spec.end)}"]
    else:
        when = [f"DTSTART;VALUE=DATE:{spec.start:%Y%m%d}", f"DTEND;VALUE=DATE:{spec.end:%Y%m%d}"]
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//syncd bench floor//EN",
             "BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *when,
             f"SUMMARY:{spec.title}", f"TRANSP:{'OPAQUE' if spec.busy else 'TRANSPARENT'}"]
    if spec.description:
        lines.append(f"DESCRIPTION:{spec.description}")
    if spec.location:
        lines.append(f"LOCATION:{spec.location}")
    lines += [f"X-BENCH-ID:{uid}", "END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode()


class CalDavFloor:
    """CalDAV on raw HTTP: one request per write, ``concurrency`` per calendar."""

    def __init__(self, api: str, concurrency: int) -> None:
        self.http = HttpPool(api)
        self.concurrency = concurrency

    @staticmethod
    def _auth(cal: Calendar) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{cal.owner}:x".encode()).decode()}

    def _report(self, cal: Calendar, body: str, depth: str) -> ET.Element:
        response = self.http.request("REPORT", quote(cal.ref), body.encode(), {
            **self._auth(cal), "Depth": depth, "Content-Type": "application/xml; charset=utf-8"})
        if response.status != 207:
            raise _fail("REPORT", response.status, response.body)
        return ET.fromstring(response.body)

    def read(self, cal: Calendar) -> None:
        token = f"<D:sync-token>{cal.cursor}</D:sync-token>" if cal.cursor else "<D:sync-token/>"
        root = self._report(cal, (
            '<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
            f"{token}<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop>"
            "</D:sync-collection>"), "0")
        unknown = []
        for item in root.iter(f"{DAV}response"):
            href = unquote(item.findtext(f"{DAV}href") or "")
            etag = item.findtext(f".//{DAV}getetag")
            status = item.findtext(f"{DAV}status") or ""
            if " 404 " in status or etag is None:
                cal.etags.pop(href, None)
            elif cal.etags.get(href) != etag:
                unknown.append(href)
        cal.cursor = root.findtext(f"{DAV}sync-token")
        for first in range(0, len(unknown), MULTIGET_CHUNK):
            hrefs = "".join(f"<D:href>{quote(h)}</D:href>"
                            for h in unknown[first:first + MULTIGET_CHUNK])
            got = self._report(cal, (
                '<?xml version="1.0" encoding="utf-8"?>'
                '<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                f"<D:prop><D:getetag/><C:calendar-data/></D:prop>{hrefs}"
                "</C:calendar-multiget>"), "1")
            for item in got.iter(f"{DAV}response"):
                etag = item.findtext(f".//{DAV}getetag")
                if etag is not None and item.findtext(f".//{CAL}calendar-data"):
                    cal.etags[unquote(item.findtext(f"{DAV}href") or "")] = etag
                    cal.fetched += 1

    def _put(self, cal: Calendar, index: int, conditional: dict[str, str]) -> None:
        href = cal.events.get(index) or f"{cal.ref}floor-{index}.ics"
        response = self.http.request("PUT", quote(href), ical(f"floor-{index}", cal.specs[index]),
                                     {**self._auth(cal), **conditional,
                                      "Content-Type": "text/calendar; charset=utf-8"})
        if not response.ok:
            raise _fail("PUT", response.status, response.body)
        cal.events[index] = href
        cal.etags[href] = response.headers.get("etag", "")

    def _delete(self, cal: Calendar, index: int) -> None:
        href = cal.events.pop(index)
        response = self.http.request("DELETE", quote(href), b"",
                                     {**self._auth(cal), "If-Match": cal.etags.pop(href)})
        if not response.ok:
            raise _fail("DELETE", response.status, response.body)

    def _each(self, work: Any, indexes: Sequence[int]) -> None:
        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(work, indexes))

    def create(self, cal: Calendar, indexes: Sequence[int]) -> None:
        self._each(lambda i: self._put(cal, i, {"If-None-Match": "*"}), indexes)

    def update(self, cal: Calendar, indexes: Sequence[int]) -> None:
        self._each(lambda i: self._put(cal, i, {"If-Match": cal.etags[cal.events[i]]}), indexes)

    def delete(self, cal: Calendar, indexes: Sequence[int]) -> None:
        self._each(lambda i: self._delete(cal, i), indexes)

    def close(self) -> None:
        self.http.close()


# --- Google ------------------------------------------------------------------------------


class Pacer:
    """Keeps one user's calls at or under ``per_minute`` in every sliding minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.sent: deque[float] = deque()
        self.lock = threading.Lock()

    def take(self, calls: int) -> None:
        with self.lock:
            while True:
                now = time.monotonic()
                while self.sent and now - self.sent[0] >= 60:
                    self.sent.popleft()
                if len(self.sent) + calls <= self.per_minute:
                    self.sent.extend([now] * calls)
                    return
                time.sleep(60 - (now - self.sent[0]))


def google_body(event_id: str, spec: Spec) -> dict[str, Any]:
    def when(value: datetime | date) -> dict[str, str]:
        if isinstance(value, datetime):
            return {"dateTime": value.isoformat().replace("+00:00", "Z"), "timeZone": TZ}
        return {"date": value.isoformat()}

    return {"id": event_id, "summary": spec.title, "start": when(spec.start),
            "end": when(spec.end), "transparency": "opaque" if spec.busy else "transparent",
            "description": spec.description, "location": spec.location,
            "extendedProperties": {"private": {"benchId": event_id}}}


_PART_ID = re.compile(rb"Content-ID:\s*<[^>]*\+(\d+)>", re.IGNORECASE)
_BLANK = re.compile(rb"\r?\n\r?\n")


class GoogleFloor:
    """Calendar v3 on raw HTTP: list with syncToken, write in multipart batches of 50."""

    def __init__(self, api: str) -> None:
        self.http = HttpPool(api)
        self.pacers: dict[str, Pacer] = {}

    def _events(self, cal: Calendar) -> str:
        return f"/calendar/v3/calendars/{quote(cal.ref, safe='')}/events"

    def read(self, cal: Calendar) -> None:
        if cal.cursor:
            params: dict[str, str] = {"syncToken": cal.cursor}
        else:
            now = datetime.now(UTC)
            params = {"timeMin": (now - timedelta(days=30)).isoformat(timespec="seconds"),
                      "timeMax": (now + timedelta(days=365)).isoformat(timespec="seconds"),
                      "showDeleted": "false"}
        params["maxResults"] = "2500"
        page: str | None = None
        while True:
            query = {**params, **({"pageToken": page} if page else {})}
            self._pacer(cal).take(1)
            response = self.http.request("GET", f"{self._events(cal)}?{urlencode(query)}")
            if not response.ok:
                raise _fail("events.list", response.status, response.body)
            data = json.loads(response.body)
            for item in data.get("items", []):
                if item.get("status") == "cancelled":
                    cal.etags.pop(item["id"], None)
                elif cal.etags.get(item["id"]) != item.get("etag"):
                    cal.etags[item["id"]] = item.get("etag", "")
                    cal.fetched += 1  # its content came with the listing
            page = data.get("nextPageToken")
            if not page:
                cal.cursor = data.get("nextSyncToken")
                return

    def _pacer(self, cal: Calendar) -> Pacer:
        return self.pacers.setdefault(cal.ref, Pacer(GOOGLE_USER_QUOTA))

    def _batch(self, cal: Calendar, parts: list[tuple[str, str, dict[str, str], Any]]
               ) -> list[tuple[int, Any]]:
        results: list[tuple[int, Any]] = []
        for first in range(0, len(parts), GOOGLE_BATCH):
            chunk = parts[first:first + GOOGLE_BATCH]
            boundary = "floor_batch_boundary"
            body = b""
            for n, (method, path, headers, payload) in enumerate(chunk):
                inner = f"{method} {path} HTTP/1.1\r\n"
                inner += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                data = json.dumps(payload).encode() if payload is not None else b""
                if payload is not None:
                    inner += "Content-Type: application/json\r\n"
                body += (f"--{boundary}\r\nContent-Type: application/http\r\n"
                         f"Content-ID: <floor+{n}>\r\n\r\n{inner}\r\n").encode() + data + b"\r\n"
            body += f"--{boundary}--\r\n".encode()
            self._pacer(cal).take(len(chunk))
            response = self.http.request("POST", "/batch/calendar/v3", body, {
                "Content-Type": f"multipart/mixed; boundary={boundary}"})
            if not response.ok:
                raise _fail("batch", response.status, response.body)
            results.extend(self._parse_batch(response, len(chunk)))
        return results

    @staticmethod
    def _parse_batch(response: Any, count: int) -> list[tuple[int, Any]]:
        match = re.search(r'boundary="?([^";]+)', response.headers.get("content-type", ""))
        if match is None:
            raise RuntimeError("floor batch: no boundary in the answer")
        out: list[tuple[int, Any]] = [(0, None)] * count
        for part in response.body.split(b"--" + match.group(1).encode()):
            found = _PART_ID.search(part)
            if found is None:
                continue
            pieces = _BLANK.split(part, maxsplit=2)
            status = int(pieces[1].split(b" ", 2)[1]) if len(pieces) > 1 else 0
            text = pieces[2].strip() if len(pieces) > 2 else b""
            out[int(found.group(1))] = (status, json.loads(text) if text else None)
        return out

    def _check(self, what: str, results: list[tuple[int, Any]]) -> None:
        bad = [status for status, _ in results if not 200 <= status < 300]
        if bad:
            raise RuntimeError(f"floor {what}: statuses {sorted(set(bad))}")

    def create(self, cal: Calendar, indexes: Sequence[int]) -> None:
        path = f"{self._events(cal)}?sendUpdates=none"
        parts: list[tuple[str, str, dict[str, str], Any]] = [
            ("POST", path, {}, google_body(f"floor{i:08d}", cal.specs[i])) for i in indexes]
        results = self._batch(cal, parts)
        self._check("insert", results)
        for i, (_, body) in zip(indexes, results, strict=True):
            cal.events[i] = body["id"]
            cal.etags[body["id"]] = body["etag"]

    def update(self, cal: Calendar, indexes: Sequence[int]) -> None:
        parts = [("PATCH", f"{self._events(cal)}/{cal.events[i]}?sendUpdates=none",
                  {"If-Match": cal.etags[cal.events[i]]}, {"summary": cal.specs[i].title})
                 for i in indexes]
        results = self._batch(cal, parts)
        self._check("patch", results)
        for i, (_, body) in zip(indexes, results, strict=True):
            cal.etags[cal.events[i]] = body["etag"]

    def delete(self, cal: Calendar, indexes: Sequence[int]) -> None:
        parts = [("DELETE", f"{self._events(cal)}/{cal.events[i]}?sendUpdates=none",
                  {"If-Match": cal.etags[cal.events[i]]}, None) for i in indexes]
        self._check("delete", self._batch(cal, parts))
        for i in indexes:
            cal.etags.pop(cal.events.pop(i), None)

    def close(self) -> None:
        self.http.close()


# --- Microsoft Graph ---------------------------------------------------------------------


def graph_body(spec: Spec) -> dict[str, Any]:
    def when(value: datetime | date) -> dict[str, str]:
        if isinstance(value, datetime):
            return {"dateTime": value.astimezone(UTC).replace(tzinfo=None).isoformat(),
                    "timeZone": "UTC"}
        return {"dateTime": f"{value.isoformat()}T00:00:00", "timeZone": TZ}

    return {"subject": spec.title, "start": when(spec.start), "end": when(spec.end),
            "isAllDay": not isinstance(spec.start, datetime),
            "showAs": "busy" if spec.busy else "free",
            "body": {"contentType": "text", "content": spec.description},
            "location": {"displayName": spec.location}}


class GraphFloor:
    """Graph on raw HTTP: delta reads, ``$batch`` writes of 20 in four chains."""

    def __init__(self, api: str, info: dict[str, Any]) -> None:
        self.http = HttpPool(api)
        self.root = info["api_path"]
        identity = HttpPool(info["identity_url"])
        form = urlencode({"grant_type": "client_credentials", "client_id": info["client_id"],
                          "client_secret": info["client_secret"],
                          "scope": "https://graph.microsoft.com/.default"}).encode()
        response = identity.request("POST", f"/{info['tenant']}/oauth2/v2.0/token", form,
                                    {"Content-Type": "application/x-www-form-urlencoded"})
        identity.close()
        if not response.ok:
            raise _fail("token", response.status, response.body)
        self.headers = {"Authorization": f"Bearer {json.loads(response.body)['access_token']}",
                        "Prefer": 'IdType="ImmutableId", outlook.timezone="UTC", '
                                  "odata.maxpagesize=100"}

    def _user(self, cal: Calendar) -> str:
        return f"/users/{quote(cal.ref, safe='@')}"

    def read(self, cal: Calendar) -> None:
        if cal.cursor:
            url = cal.cursor
        else:
            now = datetime.now(UTC)
            span = {"startDateTime": (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "endDateTime": (now + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")}
            url = f"{self.root}{self._user(cal)}/calendarView/delta?{urlencode(span)}"
        while True:
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            response = self.http.request("GET", path, b"", self.headers)
            if not response.ok:
                raise _fail("delta", response.status, response.body)
            data = json.loads(response.body)
            for item in data.get("value", []):
                if "@removed" in item:
                    cal.etags.pop(item["id"], None)
                elif cal.etags.get(item["id"]) != item.get("@odata.etag"):
                    cal.etags[item["id"]] = item.get("@odata.etag", "")
                    cal.fetched += 1  # its content came with the delta page
            if "@odata.deltaLink" in data:
                cal.cursor = data["@odata.deltaLink"]
                return
            url = data["@odata.nextLink"]

    def _batch(self, items: list[dict[str, Any]]) -> list[tuple[int, Any]]:
        results: list[tuple[int, Any]] = []
        for first in range(0, len(items), GRAPH_BATCH):
            chunk = [dict(item, id=str(n)) for n, item in
                     enumerate(items[first:first + GRAPH_BATCH])]
            for n, item in enumerate(chunk):
                if n >= GRAPH_CHAINS:
                    item["dependsOn"] = [str(n - GRAPH_CHAINS)]
            response = self.http.request(
                "POST", f"{self.root}/$batch", json.dumps({"requests": chunk}).encode(),
                {**self.headers, "Content-Type": "application/json"})
            if not response.ok:
                raise _fail("$batch", response.status, response.body)
            answers = {a["id"]: a for a in json.loads(response.body)["responses"]}
            results.extend((answers[str(n)]["status"], answers[str(n)].get("body"))
                           for n in range(len(chunk)))
        bad = [status for status, _ in results if not 200 <= status < 300]
        if bad:
            raise RuntimeError(f"floor $batch: statuses {sorted(set(bad))}")
        return results

    def create(self, cal: Calendar, indexes: Sequence[int]) -> None:
        json_headers = {"Content-Type": "application/json"}
        results = self._batch([{"method": "POST", "url": f"{self._user(cal)}/events",
                                "headers": json_headers, "body": graph_body(cal.specs[i])}
                               for i in indexes])
        for i, (_, body) in zip(indexes, results, strict=True):
            cal.events[i] = body["id"]
            cal.etags[body["id"]] = body["@odata.etag"]

    def update(self, cal: Calendar, indexes: Sequence[int]) -> None:
        results = self._batch([{
            "method": "PATCH", "url": f"{self._user(cal)}/events/{quote(cal.events[i], safe='')}",
            "headers": {"Content-Type": "application/json",
                        "If-Match": cal.etags[cal.events[i]]},
            "body": {"subject": cal.specs[i].title}} for i in indexes])
        for i, (_, body) in zip(indexes, results, strict=True):
            cal.etags[cal.events[i]] = body["@odata.etag"]

    def delete(self, cal: Calendar, indexes: Sequence[int]) -> None:
        self._batch([{"method": "DELETE",
                      "url": f"{self._user(cal)}/events/{quote(cal.events[i], safe='')}",
                      "headers": {"If-Match": cal.etags[cal.events[i]]}} for i in indexes])
        for i in indexes:
            cal.etags.pop(cal.events.pop(i), None)

    def close(self) -> None:
        self.http.close()


def floor_client(provider: str, api: str, info: dict[str, Any], caldav_concurrency: int
                 ) -> FloorClient:
    if provider == "caldav":
        return CalDavFloor(api, caldav_concurrency)
    if provider == "google":
        return GoogleFloor(api)
    if provider == "outlook":
        return GraphFloor(api, info)
    raise ValueError(provider)
