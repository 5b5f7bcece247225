"""Starting a serving process (:mod:`bench.serve`) and talking to its control API."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServerInfo:
    """Where a serving process listens: ``api`` (through the proxy) and ``control``."""

    provider: str
    api: str
    direct: str
    control: str
    info: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> ServerInfo:
        return cls(**json.loads(text))


class Control:
    """A client of the control API (one keep-alive connection; not thread-safe)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)

    def call(self, method: str, **params: Any) -> Any:
        body = json.dumps(params).encode()
        self.conn.request("POST", f"/{method}", body=body,
                          headers={"Content-Type": "application/json"})
        response = self.conn.getresponse()
        data = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"control {method}: {data.get('error')}")
        return data["result"]

    def close(self) -> None:
        self.conn.close()


class ServingProcess:
    """``python -m bench.serve`` as a child; stopped by closing its standard input."""

    def __init__(self, provider: str, latency_ms: float, folder: Path) -> None:
        self.provider = provider
        folder.mkdir(parents=True, exist_ok=True)
        self.log = (folder / "serve.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve", "--provider", provider,
             "--latency-ms", str(latency_ms), "--folder", str(folder)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the {provider} server did not start; see {folder}/serve.log")
        data = json.loads(line)
        self.info = ServerInfo(provider, data["api"], data["direct"], data["control"],
                               data["info"])

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
