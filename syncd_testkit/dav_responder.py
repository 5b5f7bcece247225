"""A small CalDAV responder that misbehaves on purpose, for what real servers refuse to serve.

It holds one calendar collection at ``/cal/`` and answers the requests syncd sends after
it found the calendar: PROPFIND (depth 0), REPORT sync-collection and calendar-multiget,
GET, PUT and DELETE. What it serves is whatever the test put in it, byte for byte: an
object with bytes that are not allowed in XML makes every multiget reply that carries it
invalid XML, as a careless server's would. Knobs:

* ``outside``: hrefs listed in every sync-collection reply that are not members of the
  collection (a parent's object, another host, a nested path);
* ``lie_about_sizes``: report a small ``getcontentlength`` for every object, so only the
  streamed cap can stop a large one;
* ``get_status`` / ``put_status``: names whose GET / PUT fails with the given status;
* ``multiget_extra``: raw ``<response>`` XML added to every multiget reply (objects that
  were not asked for);
* ``stall``: every REPORT waits until :meth:`stop` (a server that accepts and never
  answers); ``reports_seen`` is set when one arrives;
* ``free_busy``: the body of every free-busy-query reply (200, ``text/calendar``); None
  refuses the report with 403. A calendar-query is answered with every object, whatever
  its time (a server whose filter cannot be trusted), and the ``outside`` hrefs.
"""

from __future__ import annotations

import hashlib
import re
import threading
from urllib.parse import unquote, urlsplit

from syncd_testkit.loopback import QuietHandler, ThreadedHTTPServer

PATH = "/cal/"
_HREF = re.compile(rb"<(?:\w+:)?href>([^<]*)</(?:\w+:)?href>")


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha1(data).hexdigest() + '"'


def _text(data: bytes) -> bytes:
    """XML-escape only what XML needs; every other byte goes out as it is."""
    return data.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")


class MisbehavingDav(ThreadedHTTPServer):
    name = "misbehaving-dav"
    #: A client that hangs up on a reply it will not read is what the tests want.
    quiet_errors = (Exception,)

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.outside: list[str] = []
        self.lie_about_sizes = False
        self.get_status: dict[str, int] = {}
        self.put_status: dict[str, int] = {}
        self.multiget_extra = b""
        self.requests: list[tuple[str, str]] = []
        self.stall = False
        self.free_busy: bytes | None = None
        self.reports_seen = threading.Event()
        self._stopped = threading.Event()
        self.version = 0
        self._lock = threading.Lock()

    def handler(self) -> type[QuietHandler]:
        responder = self

        class Handler(QuietHandler):
            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      content_type: str = 'application/xml; charset="utf-8"') -> None:
                """A reply that is XML unless said otherwise."""
                self.reply(status, body, headers, content_type)

            def _name(self) -> str:
                return unquote(urlsplit(self.path).path)[len(PATH):]

            def do_PROPFIND(self) -> None:
                self.read_body()
                responder.requests.append(("PROPFIND", self.path))
                self._send(207, (
                    '<?xml version="1.0"?><D:multistatus xmlns:D="DAV:" '
                    'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:response>'
                    f"<D:href>{PATH}</D:href><D:propstat><D:prop><D:resourcetype>"
                    "<D:collection/><C:calendar/></D:resourcetype><D:displayname>cal"
                    "</D:displayname></D:prop><D:status>HTTP/1.1 200 OK</D:status>"
                    "</D:propstat></D:response></D:multistatus>").encode())

            def do_REPORT(self) -> None:
                body = self.read_body()
                responder.requests.append(("REPORT", self.path))
                responder.reports_seen.set()
                if responder.stall:
                    responder._stopped.wait()
                    return
                if b"sync-collection" in body:
                    self._send(207, responder.listing(body))
                elif b"free-busy-query" in body:
                    if responder.free_busy is None:
                        self._send(403)
                    else:
                        self._send(200, responder.free_busy, content_type="text/calendar")
                elif b"calendar-query" in body:
                    names = [PATH + n for n in sorted(responder.objects)]
                    self._send(207, responder.multiget(names + responder.outside))
                else:
                    hrefs = [unquote(h.decode()) for h in _HREF.findall(body)]
                    self._send(207, responder.multiget(hrefs))

            def do_GET(self) -> None:
                responder.requests.append(("GET", self.path))
                name = self._name()
                if name in responder.get_status:
                    self._send(responder.get_status[name])
                elif name in responder.objects:
                    data = responder.objects[name]
                    self._send(200, data, {"ETag": _etag(data)}, "text/calendar")
                else:
                    self._send(404)

            def do_PUT(self) -> None:
                data = self.read_body()
                responder.requests.append(("PUT", self.path))
                name = self._name()
                if name in responder.put_status:
                    return self._send(responder.put_status[name])
                exists = name in responder.objects
                if self.headers.get("If-None-Match") == "*" and exists:
                    return self._send(412)
                match = self.headers.get("If-Match")
                if match and match != "*" and (not exists or _etag(responder.objects[name])
                                               != match):
                    return self._send(412)
                responder.put(name, data)
                self._send(204 if exists else 201, headers={"ETag": _etag(data)})

            def do_DELETE(self) -> None:
                responder.requests.append(("DELETE", self.path))
                name = self._name()
                if name not in responder.objects:
                    return self._send(404)
                with responder._lock:
                    del responder.objects[name]
                    responder.version += 1
                self._send(204)

        return Handler

    @property
    def url(self) -> str:
        return f"{self.origin}{PATH}"

    def on_stop(self) -> None:
        self._stopped.set()  # releases a stalled REPORT

    def put(self, name: str, data: bytes) -> None:
        with self._lock:
            self.objects[name] = data
            self.version += 1

    def listing(self, body: bytes) -> bytes:
        """A full listing whenever the token is not the current one (a server may do so)."""
        token = re.search(rb"<(?:\w+:)?sync-token>([^<]*)<", body)
        current = f"tok-{self.version}"
        parts = ['<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:">']
        if not token or token.group(1).decode() != current:
            for name, data in sorted(self.objects.items()):
                size = 100 if self.lie_about_sizes else len(data)
                parts.append(f"<D:response><D:href>{PATH}{name}</D:href><D:propstat><D:prop>"
                             f"<D:getetag>{_etag(data)}</D:getetag>"
                             f"<D:getcontentlength>{size}</D:getcontentlength></D:prop>"
                             "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>")
            for href in self.outside:
                parts.append(f"<D:response><D:href>{href}</D:href><D:propstat><D:prop>"
                             '<D:getetag>"x"</D:getetag><D:getcontentlength>100'
                             "</D:getcontentlength></D:prop><D:status>HTTP/1.1 200 OK"
                             "</D:status></D:propstat></D:response>")
        parts.append(f"<D:sync-token>{current}</D:sync-token></D:multistatus>")
        return "".join(parts).encode()

    def multiget(self, hrefs: list[str]) -> bytes:
        out = [b'<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" '
               b'xmlns:C="urn:ietf:params:xml:ns:caldav">']
        for href in hrefs:
            name = urlsplit(href).path[len(PATH):]
            data = self.objects.get(name)
            if data is None:
                out.append(f"<D:response><D:href>{href}</D:href>"
                           "<D:status>HTTP/1.1 404 Not Found</D:status></D:response>".encode())
                continue
            out.append(f"<D:response><D:href>{PATH}{name}</D:href><D:propstat><D:prop>"
                       f"<D:getetag>{_etag(data)}</D:getetag><C:calendar-data>".encode()
                       + _text(data) + b"</C:calendar-data></D:prop>"
                       b"<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>")
        out.append(self.multiget_extra)
        out.append(b"</D:multistatus>")
        return b"".join(out)


def serve_oversized(count: int, megabytes: int, goods: int, lie: bool) -> None:
    """Serve ``goods`` small events and ``count`` objects of ``megabytes`` each until
    stdin closes; prints the calendar's URL first (for bench/hostile.py's memory rows,
    which must not count the responder's own memory)."""
    import sys

    from syncd_testkit.ics_corpus import oversized

    server = MisbehavingDav()
    for n in range(goods):
        server.put(f"good-{n}.ics", (
            f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//good//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:good-{n}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261211T100000Z\r\n"
            f"DTEND:20261211T110000Z\r\nSUMMARY:Good {n}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ).encode())
    for n in range(count):
        server.put(f"big-{n}.ics", oversized(f"big-{n}", megabytes).data)
    server.lie_about_sizes = lie
    server.start()
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop()
