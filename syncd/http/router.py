"""Requests, responses and the routing table of the daemon's HTTP listener.

An endpoint is a :class:`Route`: a path, the methods it answers and a handler from
:class:`Request` to :class:`Response`. The :class:`Router` is the WSGI application the
server runs: it answers 404 and 405 itself, refuses a body over the route's cap with 413
before reading it (or as soon as it is seen to be larger, when no length was announced),
and turns a handler's exception into a bare 500 (logged, never shown to the caller).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

log = logging.getLogger("syncd.http")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass(frozen=True)
class Request:
    """One request as a handler sees it: header names in lower case, the whole body."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    remote: str = ""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, text: str = "", **extra: str) -> Response:
        """A plain-text answer (the reason phrase when ``text`` is empty)."""
        body = (text or HTTPStatus(status).phrase).encode("utf-8") + b"\n"
        return cls(status, body, headers=tuple((k.replace("_", "-"), v)
                                               for k, v in extra.items()))


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """An endpoint: ``path`` exactly, or with ``prefix`` also every path below it
    (``path/...``, for ids carried in the path); ``methods`` it answers, ``max_body``
    bytes it reads at most (None: the listener's cap). The handler sees the whole path."""

    path: str
    handler: Handler
    methods: tuple[str, ...] = ("POST",)
    max_body: int | None = None
    prefix: bool = False


@dataclass
class Router:
    """The routing table and WSGI application; ``max_body`` is the listener's body cap;
    ``handling`` brackets each handler's run (the server's read deadline stops counting
    there)."""

    max_body: int
    routes: dict[str, Route] = field(default_factory=dict)
    handling: Callable[[], AbstractContextManager[None]] = nullcontext

    def add(self, route: Route) -> None:
        if route.path in self.routes:
            raise ValueError(f"two endpoints for {route.path}")
        self.routes[route.path] = route

    def _below(self, path: str) -> Route | None:
        """The deepest prefix route ``path`` is below."""
        found = [route for parent, route in self.routes.items()
                 if route.prefix and path.startswith(parent.rstrip("/") + "/")]
        return max(found, key=lambda route: len(route.path), default=None)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse
                 ) -> Iterable[bytes]:
        response = self._answer(environ)
        headers = [("Content-Type", response.content_type),
                   ("Content-Length", str(len(response.body))),
                   ("Cache-Control", "no-store"), *response.headers]
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
        return [response.body]

    def _answer(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO", "")
        route = self.routes.get(path) or self._below(path)
        if route is None:
            return Response.text(404)
        method = environ.get("REQUEST_METHOD", "")
        if method not in route.methods:
            return Response.text(405, Allow=", ".join(route.methods))
        cap = route.max_body if route.max_body is not None else self.max_body
        body = _read_body(environ, cap)
        if body is None:
            return Response.text(413, f"the body is larger than {cap} bytes")
        headers = {key[5:].replace("_", "-").lower(): value
                   for key, value in environ.items() if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        request = Request(method, path, environ.get("QUERY_STRING", ""), headers, body,
                          environ.get("REMOTE_ADDR", ""))
        try:
            with self.handling():
                return route.handler(request)
        except Exception:  # the caller learns nothing of syncd's insides
            # The endpoint, not the path: a path may carry a token (/hooks/webdav/<id>/
            # <token>, /book/<token>), which is a secret the log must not hold.
            log.exception("the handler of %s failed", route.path)
            return Response.text(500)


def _read_body(environ: dict[str, Any], cap: int) -> bytes | None:
    """The body, or None when it is larger than ``cap`` (nothing more is read then)."""
    length = environ.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > cap:
        return None
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    body: bytes = stream.read(int(length)) if length.isdigit() else stream.read(cap + 1)
    return None if len(body) > cap else body
