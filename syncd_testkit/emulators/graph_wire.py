"""Transport-neutral request/response objects shared by the Graph server and ``$batch``.

An outer HTTP request and an inner ``$batch`` item go through the same pipeline, so both are
represented by :class:`ApiRequest`/:class:`ApiResponse` rather than by the HTTP handler.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .graph_model import GraphError
from .raw_json import splice

__all__ = ["JSON_CONTENT_TYPE", "ApiRequest", "ApiResponse", "error_response"]

JSON_CONTENT_TYPE = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)


@dataclass
class ApiRequest:
    """A request as the emulator sees it. ``path`` is relative to ``/v1.0`` and still encoded.

    ``headers`` are stored with lower-case names; repeated headers are joined with ", ".
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    url: str
    raw_headers: dict[str, str] = field(default_factory=dict)
    in_batch: bool = False
    batch_item_id: str | None = None
    record: Any = None  # the RecordedRequest this request was logged as

    @classmethod
    def from_target(
        cls,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        *,
        base_url: str,
        in_batch: bool = False,
        batch_item_id: str | None = None,
    ) -> ApiRequest:
        """Build from a request target such as ``/v1.0/me/events?$top=5`` or ``/me/events``."""
        parts = urlsplit(target)
        path = parts.path
        if path.lower().startswith("/v1.0"):
            path = path[len("/v1.0") :]
        if not path.startswith("/"):
            path = "/" + path
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query[key] = value
        lowered: dict[str, str] = {}
        for name, value in headers.items():
            key = name.lower()
            lowered[key] = f"{lowered[key]}, {value}" if key in lowered else value
        suffix = f"?{parts.query}" if parts.query else ""
        return cls(
            method=method.upper(),
            path=path,
            query=query,
            headers=lowered,
            body=body,
            url=f"{base_url}{path}{suffix}",
            raw_headers=dict(headers),
            in_batch=in_batch,
            batch_item_id=batch_item_id,
        )

    def q(self, name: str) -> str | None:
        """Case-insensitive query-option lookup (``$Top`` and ``$top`` are the same option)."""
        lowered = name.lower()
        for key, value in self.query.items():
            if key.lower() == lowered:
                return value
        return None

    def json(self) -> Any:
        """The body as JSON; 400 ``BadRequest`` if it is not valid JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc


@dataclass
class ApiResponse:
    """A response before serialisation; ``body`` is JSON-serialisable or ``None``."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False

    def encoded(self) -> bytes:
        """The body bytes as they go on the wire."""
        return b"" if self.body is None else splice(json.dumps(self.body)).encode("utf-8")


def error_response(
    req: ApiRequest, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> ApiResponse:
    """Graph's error shape, including ``innerError`` with ``date`` and the request ids."""
    request_id = str(uuid.uuid4())
    client_request_id = req.headers.get("client-request-id", request_id)
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    out = {"Content-Type": JSON_CONTENT_TYPE, "request-id": request_id}
    out.update(headers or {})
    return ApiResponse(status, body, out)
