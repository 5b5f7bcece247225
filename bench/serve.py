"""The serving process of one provider: its server, the latency proxy, and a control API.

Run by :mod:`bench.sync` as ``python -m bench.serve --provider P --latency-ms L --folder D``.
It prints one JSON line (``api``: the proxy's URL, ``control``: the control URL, ``info``)
and serves until its standard input closes.

The control API (``POST /<method>`` with a JSON object, answering JSON) is how the
measured processes set up calendars, read and reset the request counts, and play the
user editing events in a calendar app. It is a separate port, so its traffic is neither
delayed nor counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from bench.backends import BACKENDS, Backend, cpu_seconds
from bench.latency_proxy import LatencyProxy
from syncd_testkit.loopback import HandlerServer, QuietHandler


class Controller:
    """What the control API can do."""

    def __init__(self, backend: Backend, proxy: LatencyProxy) -> None:
        self.backend = backend
        self.proxy = proxy
        self.lock = threading.Lock()

    def server_cpu(self) -> float:
        return cpu_seconds() + sum(cpu_seconds(pid) for pid in self.backend.pids())

    def call(self, method: str, params: dict[str, Any]) -> Any:
        if method == "stats":
            return {"requests": self.proxy.traffic.snapshot(reset=bool(params.get("reset"))),
                    "server_cpu_s": self.server_cpu()}
        if method == "latency":  # the proxy's latency from now on (bench/replicas.py's rows)
            self.proxy.latency = float(params["ms"]) / 1000.0
            return self.proxy.latency * 1000.0
        with self.lock:  # one user at a time, as the calendar app would be
            if method == "setup":
                return self.backend.create_calendars(params["owners"])
            if method == "edit":
                return self.backend.edit(params["calendar"], params["events"], params["stamp"])
            if method == "delete":
                return self.backend.delete(params["calendar"], params["events"])
            if method == "count":
                return {cal: self.backend.count(cal) for cal in params["calendars"]}
            if method == "titles":  # {calendar: [event id]} -> {calendar: {event id: title}}
                return {cal: self.backend.titles(cal, ids) for cal, ids in params["events"].items()}
        raise KeyError(method)


def control_server(controller: Controller) -> HandlerServer:
    class Handler(QuietHandler):
        def do_POST(self) -> None:
            params = json.loads(self.read_body() or b"{}")
            try:
                status, result = 200, {"result": controller.call(self.path.strip("/"), params)}
            except Exception as exc:  # reported to the caller, which fails loudly
                status, result = 500, {"error": f"{type(exc).__name__}: {exc}"}
            self.reply(status, json.dumps(result).encode(), content_type="application/json")

    return HandlerServer(Handler, name="control")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=sorted(BACKENDS), required=True)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args(argv)

    backend: Backend = BACKENDS[args.provider]()
    host, port = backend.start(args.folder)
    proxy = LatencyProxy(host, port, args.latency_ms / 1000.0).start()
    control = control_server(Controller(backend, proxy)).start()
    print(json.dumps({
        "api": proxy.url, "direct": f"http://{host}:{port}",
        "control": control.origin, "info": backend.info(),
    }), flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        control.stop()
        proxy.stop()
        backend.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
