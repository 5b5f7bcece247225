"""What the listener logs never carries a secret a caller put in the path: a WebDAV-Push
delivery's token (``/hooks/webdav/<channel>/<token>``) and a booking link's token
(``/book/<token>``) are capabilities, so a handler's failure names the endpoint, not the
request's path."""

from __future__ import annotations

import io
import logging

import pytest

from syncd.http.router import Request, Response, Route, Router

TOKEN = "s3cr3t-push-token-0123456789abcdef"


def _boom(_request: Request) -> Response:
    raise RuntimeError("the database went away")


def _call(router: Router, method: str, path: str) -> str:
    seen: list[str] = []
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
               "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO(b"")}
    router(environ, lambda status, _headers: seen.append(status))
    return seen[0]


@pytest.mark.parametrize(("route", "method", "path"), [
    (Route("/hooks/webdav", _boom, prefix=True), "POST", f"/hooks/webdav/chan1/{TOKEN}"),
    (Route("/book", _boom, methods=("GET",), prefix=True), "GET", f"/book/{TOKEN}"),
])
def test_a_failing_handler_logs_its_endpoint_never_the_token_in_the_path(
        caplog: pytest.LogCaptureFixture, route: Route, method: str, path: str) -> None:
    router = Router(max_body=1024)
    router.add(route)
    with caplog.at_level(logging.DEBUG):
        assert _call(router, method, path).startswith("500")
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert route.path in logged
    assert TOKEN not in logged
