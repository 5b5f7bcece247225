"""Each runtime error is one sentence whose next step exists for the account's provider."""

from __future__ import annotations

import errno
import re
from datetime import UTC, datetime

import pytest

from syncd.config import AccountConfig, SecretRef
from syncd.errors import (
    AccountCooldown,
    AccountUnavailable,
    AnswerTooLarge,
    AuthFailed,
    CalendarMissing,
    DatabaseUnavailable,
    NotFound,
    PortInUse,
    QuotaCooldown,
    RateLimited,
    SecretUnavailable,
    ServerFailed,
    StorageFull,
    SyncdError,
    SyncRefused,
    Transient,
    Unreachable,
)
from syncd.report import describe

CALDAV = AccountConfig(name="team", provider="caldav", owner="a@example.com", calendar="crm",
                       auth={"url": "https://dav.example.com/", "username": "a@example.com",
                             "password": SecretRef("env:DAV_PW")})
GOOGLE_USER = AccountConfig(name="g", provider="google", owner="a@example.com",
                            auth={"mode": "oauth"})
GOOGLE_DOMAIN = AccountConfig(name="gd", provider="google", owner="a@example.com",
                              auth={"service_account_file": SecretRef("file:/run/key.json")})
OUTLOOK_USER = AccountConfig(name="o", provider="outlook", owner="a@example.com",
                             auth={"mode": "delegated", "tenant": "t", "client_id": "c"})
OUTLOOK_APP = AccountConfig(name="oa", provider="outlook", owner="a@example.com",
                            auth={"tenant": "t", "client_id": "c",
                                  "client_secret": SecretRef("env:GRAPH_SECRET")})
UNTIL = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)

RUNTIME: list[SyncdError | OSError] = [
    NotFound(kind="CRM user", key="ghost@example.com"),
    NotFound(kind="activity", key=9),
    SecretUnavailable(ref="env:DAV_PW", reason="the environment variable is not set"),
    StorageFull(path="/var/lib/syncd/syncd.db"),
    DatabaseUnavailable(database="postgresql://syncd:***@db/syncd", reason="connection refused"),
    PortInUse(what="embedded calendar server", host="127.0.0.1", port=5232,
              setting="[embedded] port"),
    ServerFailed(what="embedded calendar server", reason="did not start"),
    CalendarMissing(calendar="https://dav.example.com/a/crm/", found=()),
    CalendarMissing(calendar="crm", found=("work", "home")),
    Unreachable(url="https://dav.example.com/", reason="connection refused"),
    Transient(reason="HTTP 503"),
    AnswerTooLarge(url="https://graph.microsoft.com/v1.0/me/events", limit=64 << 20,
                   reason="it announced 1,073,741,824 bytes"),
    RateLimited(retry_after=30.0, reason="HTTP 429"),
    AccountCooldown(seconds=3600, reason="quotaExceeded"),
    QuotaCooldown(seconds=3600, reason="HTTP 403 quotaExceeded"),
    SyncRefused(guard="mass-deletion", account="team", count=40, limit=5),
    SyncRefused(guard="guest-updates", account="team", count=90, limit=60),
    SyncRefused(guard="empty-calendar", account="team", count=12),
    SyncRefused(guard="scope-changed", account="team"),
    AccountUnavailable(account="team", status="paused", reason="guest-updates: 90"),
    AccountUnavailable(account="team", status="flagged", reason="empty-calendar: 0 events"),
    AccountUnavailable(account="team", status="failing", until=UNTIL),
    AccountUnavailable(account="team", status="cooldown", until=UNTIL, reason="quota"),
    AccountUnavailable(account="team", status="needs_reauth", reason="HTTP 401"),
    AuthFailed(reason="HTTP 401"),
    OSError(errno.ENOSPC, "No space left on device", "/var/lib/syncd"),
    OSError(errno.EACCES, "Permission denied", "/var/lib/syncd/syncd.db"),
    RuntimeError("a bug"),
]


@pytest.mark.parametrize("error", RUNTIME, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("account", [None, CALDAV, GOOGLE_USER, OUTLOOK_APP],
                         ids=["no-account", "caldav", "google", "outlook"])
def test_every_runtime_error_is_one_sentence(error: BaseException,
                                             account: AccountConfig | None) -> None:
    text = describe(error, account)
    assert "\n" not in text and text.endswith("."), text
    assert not re.search(r"[.!?] [A-Z]", text), f"more than one sentence: {text}"
    assert ";" in text or isinstance(error, NotFound), f"no next step: {text}"


@pytest.mark.parametrize(("account", "step"), [
    (CALDAV, "put the right password in env:DAV_PW (user a@example.com); the next cycle "
             "notices the change and tries again"),
    (AccountConfig(name="embedded:a@example.com", provider="caldav", owner="a@example.com",
                   auth={"url": "http://127.0.0.1:5232/", "username": "syncd",
                         "password": SecretRef("file:/data/embedded/syncd.secret")}),
     "delete /data/embedded/syncd.secret and restart 'syncd run'"),
    (GOOGLE_USER, "run 'syncd auth google g' to sign in again"),
    (GOOGLE_DOMAIN, "a new key in file:/run/key.json is tried on the next cycle"),
    (OUTLOOK_USER, "run 'syncd auth outlook o' to sign in again"),
    (OUTLOOK_APP, "a new client secret in env:GRAPH_SECRET is tried on the next cycle"),
])
def test_a_refused_sign_in_names_the_step_that_exists_for_the_provider(
        account: AccountConfig, step: str) -> None:
    refused = describe(AuthFailed(reason="HTTP 401"), account)
    skipped = describe(AccountUnavailable(account=account.name, status="needs_reauth",
                                          reason="HTTP 401"), account)
    for text in (refused, skipped):
        assert step in text
        # Only user sign-ins have an auth command; no other account is sent to one.
        assert ("syncd auth" in text) == (account.auth.get("mode") in ("oauth", "delegated"))
