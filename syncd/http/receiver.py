"""The receiver as ``syncd run`` starts it: the listener, its endpoints and the hint queue.

Endpoints are mounted here, one line each; ``/hooks/pipedrive`` is always mounted when
the listener is on and answers 401 until ``syncd pipedrive webhooks install`` made its
secret. The daemon's :class:`~syncd.http.ops.Ops` adds ``/metrics``, ``/healthz`` and
``/readyz``, and exports the ``counts`` of every hook the router serves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from syncd.config import Config
from syncd.http.basic_auth import BasicAuthSecret
from syncd.http.booking_page import BookingPages
from syncd.http.google_hook import GoogleHook
from syncd.http.graph_hook import GraphHook
from syncd.http.ops import Ops
from syncd.http.pipedrive_hook import PipedriveHook
from syncd.http.router import Router
from syncd.http.server import HttpServer
from syncd.http.webdav_hook import WebDavHook
from syncd.push import AccountDirectory, Hints
from syncd.store.channels import ChannelStore
from syncd.store.dirty import DirtyFlags

log = logging.getLogger("syncd.http")


class Receiver:
    """Everything ``[http]`` turns on, started and stopped as one."""

    def __init__(self, config: Config, directory: AccountDirectory, dirty: DirtyFlags,
                 wake: Callable[[set[str]], None], *, port: int | None = None,
                 deleted: Callable[[Sequence[int]], None] | None = None,
                 channels: ChannelStore | None = None, ops: Ops | None = None,
                 booking: BookingPages | None = None) -> None:
        http = config.http
        assert http.listen is not None
        # the calendar hooks verify a notification against its channel's stored token
        self.channels = channels if channels is not None else ChannelStore(dirty.db)
        self.hints = Hints(directory, dirty, wake, deleted=deleted)
        self.pipedrive = PipedriveHook(BasicAuthSecret(config.data_path, "pipedrive"),
                                       self.hints)
        router = self.router = Router(http.max_body_bytes)
        router.add(self.pipedrive.route())
        self.graph = GraphHook(self.channels, self.hints)
        router.add(self.graph.route())
        router.add(self.graph.lifecycle_route())
        self.google = GoogleHook(self.channels, self.hints)
        router.add(self.google.route())
        self.webdav = WebDavHook(self.channels, self.hints)
        router.add(self.webdav.route())
        self.booking = booking
        for route in booking.routes() if booking is not None else ():  # /book/<token>
            router.add(route)
        for route in ops.routes() if ops is not None else ():  # /metrics, /healthz, /readyz
            router.add(route)
        if ops is not None:  # every hook's counts on /metrics, whenever it is mounted
            ops.watch(router, hints=self.hints)
        self.server = HttpServer.from_config(http, router)
        if port is not None:  # tests: 0 for any free port
            self.server = HttpServer(self.server.host, port, router,
                                     certificate=http.certificate, private_key=http.private_key)

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> None:
        """Listen (raises PortInUse or ServerFailed), then handle hints."""
        self.server.start()
        self.hints.start()

    def stop(self) -> None:
        """No new requests, the ones in flight answered, then the hint thread ends."""
        self.server.stop()
        self.hints.stop()
        counts = {**{f"pipedrive {k}": v for k, v in self.pipedrive.counts.items()},
                  **{f"graph {k}": v for k, v in self.graph.counts.items()},
                  **{f"google {k}": v for k, v in self.google.counts.items()},
                  **{f"webdav {k}": v for k, v in self.webdav.counts.items()},
                  **{f"hints {k}": v for k, v in self.hints.counts.items()},
                  **{f"booking {k}": v for k, v in
                     (self.booking.counts if self.booking else {}).items()}}
        if counts:  # the last word of counts /metrics served, for the log
            log.info("HTTP receiver stopped: %s",
                     ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
