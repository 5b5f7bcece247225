"""The company's webhooks for syncd (``syncd pipedrive webhooks install|list|remove``).

Pipedrive webhooks v2 (``POST /v1/webhooks``, ``GET /v1/webhooks``, ``DELETE
/v1/webhooks/{id}``) through the source's own HTTP layer (:class:`PipedriveHttp`: its
budget, errors and limits). syncd's webhooks are one per action on activities (create,
change, delete), named ``syncd activity <action>``, posting to ``[http] public_url`` +
``/hooks/pipedrive`` with Basic auth (:mod:`syncd.http.basic_auth`). They belong to the
user of the API token (or OAuth grant), and Pipedrive delivers only what that user may
see: install with an admin's credentials so that every owner's changes come.

A listing never carries the webhook's password (Pipedrive's answer has it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syncd.crm.pipedrive_http import PipedriveHttp
from syncd.errors import NotFound, Transient

ACTIONS = ("create", "change", "delete")
NAME_PREFIX = "syncd activity "


@dataclass(frozen=True)
class Webhook:
    """One webhook of the company, as shown to the admin (no password)."""

    id: int
    action: str
    object: str
    url: str
    name: str | None
    user_id: int | None
    last_status: int | None
    last_delivery: str | None

    def is_syncds(self, hook_url: str | None) -> bool:
        """Made by syncd: by its name, or posting to syncd's receiver."""
        return bool(self.name and self.name.startswith(NAME_PREFIX)) or (
            hook_url is not None and self.url == hook_url)


def _webhook(raw: Mapping[str, Any]) -> Webhook | None:
    if not isinstance(raw.get("id"), int):
        return None

    def text(key: str) -> str | None:
        value = raw.get(key)
        return str(value) if value is not None else None

    status = raw.get("last_http_status")
    user = raw.get("user_id")
    return Webhook(raw["id"], text("event_action") or "", text("event_object") or "",
                   text("subscription_url") or "", text("name"),
                   user if isinstance(user, int) else None,
                   status if isinstance(status, int) else None, text("last_delivery_time"))


def listed(http: PipedriveHttp) -> list[Webhook]:
    """The company's webhooks that these credentials may see."""
    data = http.get("/v1/webhooks").data
    found = [_webhook(raw) for raw in data or [] if isinstance(raw, Mapping)]
    return [hook for hook in found if hook is not None]


def install(http: PipedriveHttp, hook_url: str, user: str, password: str,
            keep: Callable[[], None]) -> list[Webhook]:
    """Create syncd's three webhooks with these credentials, ``keep()`` the password (the
    receiver checks the new one from then on), then delete syncd's older ones, so
    deliveries never stop. A failed create removes the ones just made and raises (the
    older webhooks and the old password stay); a failed delete raises with the new
    webhooks and password in place (an older webhook left delivers a duplicate, refused)."""
    before = [hook for hook in listed(http) if hook.is_syncds(hook_url)]
    made: list[Webhook] = []
    try:
        for action in ACTIONS:
            answer = http.request("POST", "/v1/webhooks", json={
                "subscription_url": hook_url, "event_action": action,
                "event_object": "activity", "version": "2.0", "name": NAME_PREFIX + action,
                "http_auth_user": user, "http_auth_password": password})
            hook = _webhook(answer.data) if isinstance(answer.data, Mapping) else None
            if hook is None:
                raise Transient(reason="Pipedrive's answer to creating a webhook has no id",
                                status=200)
            made.append(hook)
    except Exception:
        remove(http, made)
        raise
    keep()
    remove(http, before)
    return made


def remove(http: PipedriveHttp, hooks: Sequence[Webhook]) -> list[Webhook]:
    """Delete ``hooks``; one already gone counts as deleted."""
    for hook in hooks:
        try:
            http.request("DELETE", f"/v1/webhooks/{hook.id}")
        except NotFound:
            continue
    return list(hooks)
