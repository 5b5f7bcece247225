"""One HTTP session per process for an API whose every request carries its own credentials.

Each Outlook connector had a ``requests.Session`` of its own: about 75 KB of Python objects
and a connection each, so 1,000 accounts held 1,000 connections to one host, each idle
for most of a minute between its cycles, closed by the server and opened again (with a
TLS handshake) on the next one. :func:`process_session` gives every connector of one
provider in a process the same :class:`ApiSession`: one pool per host, holding as many
connections as requests are in flight (urllib3's pools are thread-safe).

Sharing is safe because the session itself carries no credentials and keeps nothing
from an answer:

* no session-wide ``auth`` and no header of any account: each request brings its own
  ``Authorization`` (the caller's token, read again after a 401);
* a cookie jar that accepts no cookie, so nothing one account's answer sets can go out
  on another's request;
* no ``~/.netrc`` lookup: requests would otherwise read it for every request without
  ``auth`` and put its Basic credentials in place of the request's bearer token.

What stays as a connector's own session had it: the environment's proxies and CA bundle
read once per host (:mod:`syncd.http_env`), redirects only within the origin
(:func:`syncd.network.same_origin_redirects`), the timeout each request passes, and the
answer caps the caller reads with (:mod:`connectors.answer_caps`).

:meth:`ApiSession.request` also does less work per request than ``Session.request``:
the merge of session and request settings (cookies, hooks, ``auth``, netrc) was about 460
of the 2,270 Python calls of one Graph request; it prepares the request directly and
sends it with ``Session.send`` (hooks, redirects, adapters as before).

Interface (for any connector built on ``requests``):

``process_session(shared)``
    the process's session, kept in ``ConnectorContext.shared`` (made on first use);
    a connector must not close it: :meth:`ApiSession.close` on the process's session is
    left to whoever owns ``shared`` (``Service.close``).
``ApiSession()``
    a session of the same kind for one connector alone (no ``shared``: a CLI command);
    its owner closes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.models import PreparedRequest

from syncd.http_env import read_environment_once
from syncd.network import same_origin_redirects

#: Connections kept open per host for later requests. Requests in flight beyond it still
#: get a connection each, closed after its answer; a process runs at most ``[syncd]
#: workers`` cycles at once, each with one request in flight (a mailbox allows 4).
KEPT_PER_HOST = 128
#: Hosts the session keeps a pool for (an API host and its sign-in host, per cloud).
HOSTS = 16
#: The key of the process's session in :attr:`connectors.ConnectorContext.shared`.
SESSION_KEY = "http_pool.session"

_made = threading.Lock()


class ApiSession(requests.Session):
    """A ``requests.Session`` that accounts may share: credentials only on each request,
    no cookies, no netrc; environment read once per host; same-origin redirects."""

    def __init__(self, *, kept_per_host: int = KEPT_PER_HOST) -> None:
        super().__init__()
        # allowed_domains=[]: the policy accepts and returns no cookie for any domain
        self.cookies = RequestsCookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
        adapter = HTTPAdapter(pool_connections=HOSTS, pool_maxsize=kept_per_host)
        self.mount("https://", adapter)
        self.mount("http://", adapter)
        read_environment_once(self)
        same_origin_redirects(self)

    def request(  # type: ignore[override]
            self, method: str, url: str, params: Any = None,
            data: Any = None, headers: Mapping[str, str] | None = None, cookies: Any = None,
            files: Any = None, auth: Any = None, timeout: Any = None,
            allow_redirects: bool = True, proxies: Any = None, hooks: Any = None,
            stream: bool | None = None, verify: Any = None, cert: Any = None,
            json: Any = None) -> requests.Response:
        """``Session.request`` without the merge of session settings that an API call
        with its own credentials does not use. A call passing cookies, files, auth,
        proxies, hooks, verify or cert (none of syncd's do) takes requests' own path."""
        if any(x is not None for x in (cookies, files, auth, proxies, hooks, verify, cert)):
            return super().request(method, url, params=params, data=data, headers=headers,
                                   cookies=cookies, files=files, auth=auth, timeout=timeout,
                                   allow_redirects=allow_redirects, proxies=proxies,
                                   hooks=hooks, stream=stream, verify=verify, cert=cert,
                                   json=json)
        sent = {k: v for k, v in {**self.headers, **(headers or {})}.items() if v is not None}
        prepared = PreparedRequest()
        prepared.prepare(method=method.upper(), url=url, headers=sent, params=params,
                         data=data, json=json, hooks=self.hooks)
        settings = self.merge_environment_settings(str(prepared.url), {}, stream, None, None)
        return self.send(prepared, timeout=timeout, allow_redirects=allow_redirects,
                         **settings)


def process_session(shared: dict[str, Any],
                    make: Callable[[], ApiSession] = ApiSession) -> ApiSession:
    """The process's :class:`ApiSession`, kept in ``shared`` (made by ``make`` on first
    use: a benchmark or a test passes a subclass that routes an emulator's host)."""
    with _made:
        session = shared.get(SESSION_KEY)
        if session is None:
            session = shared[SESSION_KEY] = make()
    assert isinstance(session, ApiSession)
    return session
