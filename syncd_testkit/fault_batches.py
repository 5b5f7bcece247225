"""Throttling single calls inside a batch, as Google and Graph do, for the fault proxy.

A batch's calls count against the quota one by one, so a provider may refuse some of them
inside an outer 200 (providers.md A.6, B.5). :class:`BatchCut` takes the calls chosen to be
refused out of the request before it reaches the server, and adds their refusals to the
server's answer, so the server never runs them and the client sees one answer per call:

* Google (``multipart/mixed``): a part ``HTTP/1.1 429`` or ``403`` with reason
  ``rateLimitExceeded``, its ``Content-ID`` the request part's as ``<response-...>``.
* Graph (JSON ``$batch``): an item ``429 ApplicationThrottled`` with ``Retry-After``; an
  item that ``dependsOn`` a refused one gets ``424 FailedDependency``, as Graph answers.

When every call is refused the batch never reaches the server (:attr:`BatchCut.answer`).
An envelope the server refused as a whole (not a 200 of the expected type) is passed on
untouched: it already says no call ran.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from syncd_testkit.fault_answers import google_error, graph_error, retry_after_header
from syncd_testkit.proxy import Answer, ProxyRequest

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_CONTENT_ID = re.compile(rb"^content-id:[ \t]*<?([^>\r\n]*)>?", re.IGNORECASE | re.MULTILINE)
_PART_METHOD = re.compile(rb"^(GET|POST|PUT|PATCH|DELETE) /", re.MULTILINE)
_PHRASES = {403: "Forbidden", 424: "Failed Dependency", 429: "Too Many Requests"}


@dataclass(frozen=True)
class BatchCut:
    """The request to forward without the refused calls, and how to add their refusals.

    ``body`` is None when no call is left (then :attr:`answer` is the whole answer);
    ``refused`` counts the calls refused (a Graph 424 included).
    """

    body: bytes | None
    refused: int
    answer: Answer
    merge: Callable[[Answer], Answer]


def google_parts(request: ProxyRequest) -> tuple[bytes, list[bytes], bytes, bytes] | None:
    """(preamble, parts, epilogue, boundary) of a Google batch, or None if it is not one."""
    found = _BOUNDARY.search(request.headers.get("Content-Type", ""))
    if found is None:
        return None
    delimiter = b"--" + found.group(1).encode("latin-1")
    chunks = request.body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        return None
    return chunks[0], chunks[1:-1], chunks[-1], delimiter


def google_cut(request: ProxyRequest, refuse: Sequence[bool], forbidden: Sequence[bool]
               ) -> BatchCut | None:
    """Refuse the parts where ``refuse`` is true (403 where ``forbidden``, else 429)."""
    split = google_parts(request)
    if split is None or not any(refuse):
        return None
    preamble, parts, epilogue, delimiter = split
    kept, refusals = [], []
    for part, no, as_403 in zip(parts, refuse, forbidden, strict=False):
        if not no:
            kept.append(part)
            continue
        found = _CONTENT_ID.search(part)
        content_id = found.group(1).decode("latin-1") if found else ""
        status = 403 if as_403 else 429
        message = "Rate Limit Exceeded" if as_403 else "Too many requests"
        document = json.dumps(google_error(status, "rateLimitExceeded", message,
                                           "usageLimits")).encode()
        refusals.append(
            f"\r\nContent-Type: application/http\r\nContent-ID: <response-{content_id}>\r\n\r\n"
            f"HTTP/1.1 {status} {_PHRASES[status]}\r\n"
            f"Content-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(document)}\r\n\r\n".encode() + document + b"\r\n")
    kept.extend(parts[len(refuse):])  # parts beyond the decisions pass (none, in practice)
    body = preamble + b"".join(delimiter + p for p in kept) + delimiter + epilogue

    def merge(answer: Answer) -> Answer:
        found = _BOUNDARY.search(answer.header("Content-Type"))
        if answer.status != 200 or found is None:
            return answer
        closing = b"--" + found.group(1).encode("latin-1") + b"--"
        at = answer.body.rfind(closing)
        if at < 0:
            return answer
        head = b"--" + found.group(1).encode("latin-1")
        added = b"".join(head + r for r in refusals)
        return Answer(answer.status, answer.reason, answer.headers,
                      answer.body[:at] + added + answer.body[at:])

    boundary = f"batch_{uuid.uuid4().hex}"
    whole = Answer(200, "OK", [("Content-Type", f"multipart/mixed; boundary={boundary}")],
                   b"".join(f"--{boundary}".encode() + r for r in refusals)
                   + f"--{boundary}--\r\n".encode())
    return BatchCut(body if kept else None, len(refusals), whole, merge)


def google_part_count(request: ProxyRequest) -> int:
    """How many calls a Google batch carries (0 when it is not a readable batch)."""
    split = google_parts(request)
    return len(split[1]) if split is not None else 0


def graph_items(request: ProxyRequest) -> list[dict[str, Any]] | None:
    """The items of a Graph ``$batch``, or None if it is not a readable one."""
    try:
        items = json.loads(request.body).get("requests")
    except (ValueError, AttributeError):
        return None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return None
    return items


def graph_cut(request: ProxyRequest, refuse: Sequence[bool], retry_after: float
              ) -> BatchCut | None:
    """Refuse the items where ``refuse`` is true (429), and what depends on them (424)."""
    items = graph_items(request)
    if items is None or not any(refuse):
        return None
    throttled = {str(i.get("id")) for i, no in zip(items, refuse, strict=False) if no}
    failed = set(throttled)
    grew = True
    while grew:  # dependsOn chains: a failed dependency fails what follows it
        grew = False
        for item in items:
            item_id = str(item.get("id"))
            if item_id not in failed and failed & {str(d) for d in item.get("dependsOn", [])}:
                failed.add(item_id)
                grew = True
    refusals = []
    for item in items:
        item_id = str(item.get("id"))
        if item_id in throttled:
            refusals.append({"id": item_id, "status": 429, "headers": {
                "Retry-After": retry_after_header(retry_after),
                "Content-Type": "application/json"}, "body": graph_error(
                    429, "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.", request)})
        elif item_id in failed:
            refusals.append({"id": item_id, "status": 424, "headers": {
                "Content-Type": "application/json"}, "body": graph_error(
                    424, "FailedDependency", "Dependent request failed.", request)})
    kept = [i for i in items if str(i.get("id")) not in failed]
    outer = json.loads(request.body)
    body = json.dumps({**outer, "requests": kept}).encode() if kept else None

    def merge(answer: Answer) -> Answer:
        try:
            document = json.loads(answer.body)
            responses = document["responses"]
        except (ValueError, KeyError, TypeError):
            return answer
        if answer.status != 200 or not isinstance(responses, list):
            return answer
        return Answer(answer.status, answer.reason, answer.headers, json.dumps(
            {**document, "responses": responses + refusals}).encode())

    whole = Answer(200, "OK", [("Content-Type", "application/json; charset=utf-8")],
                   json.dumps({"responses": refusals}).encode())
    return BatchCut(body, len(refusals), whole, merge)
