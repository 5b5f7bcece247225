"""Radicale's own server, run as ``python -m radicale`` is, with a listen queue that holds
the benchmark's connections: ``python -m bench.radicale_server RADICALE-ARGS...``.

Radicale's built-in server answers HTTP/1.0 and closes after each request, so every
request syncd sends (through the latency proxy) is a new TCP connection, and it accepts
them one at a time in its main loop. It listens with ``socketserver``'s default queue of
5 (``request_queue_size``), which Radicale has no option for: at 64 workers, some 200
connections a second, the queue overflows (the kernel's ``ListenOverflows``) and the
kernel resets connections. The latency proxy answered those with a 502 after trying a
fresh connection once, so a few percent of the benchmark's idle cycles failed for the
server's queue, not for syncd (175 of 5,646 on a quiet machine, 2026-12-07 16:02 UTC).
A Radicale serving thousands of calendars runs behind a WSGI server or reverse proxy with
a queue hundreds deep (gunicorn's default is 2,048); this gives the built-in one
:data:`BACKLOG` (the kernel caps it at ``net.core.somaxconn``).
"""

from __future__ import annotations

import sys

#: The listen queue of the benchmark's Radicale.
BACKLOG = 1024


def main() -> None:
    from radicale import server
    from radicale.__main__ import run

    server.ParallelHTTPServer.request_queue_size = BACKLOG  # read by listen() at bind
    sys.argv[0] = "radicale"
    run()


if __name__ == "__main__":
    main()
