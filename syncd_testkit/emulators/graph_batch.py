"""JSON ``$batch`` for the Graph emulator (must-have 20, providers.md B.5).

Validation failures of the batch as a whole (more than 20 items, duplicate ids, absolute URLs,
a body without ``Content-Type``, unknown or circular ``dependsOn``) give an outer 400. Otherwise
the outer status is 200 and each item carries its own status.

Concurrency model: items run in "waves". An item's wave is one more than the highest wave of
the items it depends on, so independent items share wave 0. Items of one wave are treated as
running at the same time: for each mailbox they are admitted through the same concurrency gate
as ordinary requests, in request order, and the ones beyond the limit get an inner 429 with
``Retry-After`` (Outlook's 4-concurrent-requests limit applies inside batches too; use
``dependsOn`` chains for one mailbox). Every inner item also counts against the mailbox's
10-minute request budget. Responses are returned in reverse request order, because Graph
does not keep request order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from .graph_faults import MailboxGate, ThrottleDecision
from .graph_model import GraphError
from .graph_ops import RequestContext
from .graph_wire import ApiRequest, ApiResponse, error_response

__all__ = ["MAX_BATCH_ITEMS", "BatchHost", "run_batch"]

MAX_BATCH_ITEMS = 20


class BatchHost(Protocol):
    """What the batch runner needs from the emulator."""

    gate: MailboxGate
    base_url: str

    def admit(
        self, req: ApiRequest
    ) -> tuple[RequestContext | None, str | None, ApiResponse | None]:
        """Record, authenticate and route; returns (context, mailbox, error response)."""
        ...

    def run_admitted(self, req: ApiRequest, ctx: RequestContext) -> ApiResponse:
        """Apply faults and latency, then perform the request."""
        ...

    def throttled(self, req: ApiRequest, decision: ThrottleDecision) -> ApiResponse:
        """The 429 response for a refused request."""
        ...

    def finish(self, req: ApiRequest, resp: ApiResponse) -> ApiResponse:
        """Record the final status of a request."""
        ...


@dataclass
class _Item:
    id: str
    method: str
    url: str
    headers: dict[str, str]
    body: Any
    depends_on: list[str]
    wave: int = 0


def _bad(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def _parse(payload: Any) -> list[_Item]:
    if not isinstance(payload, dict) or not isinstance(payload.get("requests"), list):
        raise _bad("Invalid batch payload format.")
    raw_items = payload["requests"]
    if len(raw_items) > MAX_BATCH_ITEMS:
        raise _bad(f"Number of batch request steps exceeds the maximum of {MAX_BATCH_ITEMS}.")
    items: list[_Item] = []
    seen: set[str] = set()
    for raw in raw_items:
        if not isinstance(raw, dict) or not all(k in raw for k in ("id", "method", "url")):
            raise _bad("Each batch request needs 'id', 'method' and 'url'.")
        item_id = str(raw["id"])
        if item_id in seen:
            raise _bad(f"Batch request contains a duplicate id: '{item_id}'.")
        seen.add(item_id)
        url = str(raw["url"])
        if "://" in url:
            raise _bad(f"Invalid request URL '{url}': batch request URLs must be relative.")
        headers = {str(k): str(v) for k, v in (raw.get("headers") or {}).items()}
        if "body" in raw and not any(k.lower() == "content-type" for k in headers):
            raise _bad(
                f"Write request id : {item_id} does not contain Content-Type header or body."
            )
        depends = raw.get("dependsOn") or []
        if not isinstance(depends, list):
            raise _bad("'dependsOn' must be an array of request ids.")
        items.append(
            _Item(
                item_id,
                str(raw["method"]).upper(),
                url,
                headers,
                raw.get("body"),
                [str(d) for d in depends],
            )
        )
    by_id = {item.id: item for item in items}
    for item in items:
        for dep in item.depends_on:
            if dep not in by_id:
                raise _bad(f"Request '{item.id}' depends on unknown request '{dep}'.")
    _assign_waves(items, by_id)
    return items


def _assign_waves(items: list[_Item], by_id: dict[str, _Item]) -> None:
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(item: _Item) -> int:
        if state.get(item.id) == 2:
            return item.wave
        if state.get(item.id) == 1:
            raise _bad("The dependsOn chain of the batch contains a cycle.")
        state[item.id] = 1
        item.wave = 1 + max((visit(by_id[d]) for d in item.depends_on), default=-1)
        state[item.id] = 2
        return item.wave

    for item in items:
        visit(item)


def _inner_request(item: _Item, outer: ApiRequest, base_url: str) -> ApiRequest:
    headers = dict(item.headers)
    # Inner requests inherit the outer Authorization, as Graph's batch endpoint does.
    if "authorization" in outer.headers and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = outer.headers["authorization"]
    if item.body is None:
        body = b""
    elif isinstance(item.body, str):
        body = item.body.encode("utf-8")
    else:
        body = json.dumps(item.body).encode("utf-8")
    return ApiRequest.from_target(
        item.method,
        item.url,
        headers,
        body,
        base_url=base_url,
        in_batch=True,
        batch_item_id=item.id,
    )


def run_batch(host: BatchHost, outer: ApiRequest) -> ApiResponse:
    """Execute a ``POST /$batch`` request."""
    try:
        items = _parse(outer.json())
    except GraphError as err:
        return error_response(outer, err.status, err.code, err.message)
    results: dict[str, ApiResponse] = {}
    for wave in sorted({item.wave for item in items}):
        admitted: list[tuple[str, ApiRequest, RequestContext, str]] = []
        try:
            for item in (i for i in items if i.wave == wave):
                req = _inner_request(item, outer, host.base_url)
                failed = [d for d in item.depends_on if results[d].status >= 400]
                ctx, mailbox, early = host.admit(req)
                if failed:
                    early = error_response(
                        req, 424, "FailedDependency", f"Dependent request '{failed[0]}' failed."
                    )
                elif early is None and ctx is not None and mailbox is not None:
                    decision = host.gate.enter(mailbox)
                    if decision is None:
                        admitted.append((item.id, req, ctx, mailbox))
                        continue
                    early = host.throttled(req, decision)
                assert early is not None, "admit() returns either a context or an error"
                results[item.id] = host.finish(req, early)
            for item_id, req, ctx, _mailbox in admitted:
                results[item_id] = host.finish(req, host.run_admitted(req, ctx))
        finally:
            for _id, _req, _ctx, mailbox in admitted:
                host.gate.leave(mailbox)
    ordered = [(item.id, results[item.id]) for item in reversed(items)]
    body = {"responses": [_inner_json(item_id, resp) for item_id, resp in ordered]}
    return ApiResponse(200, body, {"Content-Type": "application/json; charset=utf-8"})


def _inner_json(item_id: str, resp: ApiResponse) -> dict[str, Any]:
    out: dict[str, Any] = {"id": item_id, "status": resp.status, "headers": dict(resp.headers)}
    if resp.body is not None:
        out["body"] = resp.body
    return out
