"""Fixtures for the Outlook connector: Graph + identity emulators, accounts, an engine world.

Every connector here runs real msal against the identity emulator and real HTTP against
the Graph emulator; one :class:`RoutingSession` serves both, as in production one
``requests.Session`` does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from cryptography.fernet import Fernet

from connectors import outlook_http
from connectors.base import CalendarConnector, Window, WriteOp, WriteResult
from connectors.outlook import OutlookCalendar
from connectors.outlook_auth import device_code_login
from connectors.outlook_map import MARKER_PROP
from syncd.config import AccountConfig, SecretRef
from syncd.model import Projection
from syncd.service import account_policy
from syncd.store.credentials import CredentialStore
from syncd.store.db import Database
from syncd.store.state import StateStore
from syncd_testkit.emulators.graph import GraphEmulator
from syncd_testkit.emulators.graph_fixtures import (  # noqa: F401 - pytest fixtures
    graph_emulator,
    graph_emulator_with_identity,
    identity_emulator,
)
from syncd_testkit.emulators.graph_model import ext_prop_key
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession
from syncd_testkit.world import START, Sent, World, open_store

ALICE = "alice@contoso.test"
BOB = "bob@contoso.test"
TENANT = "tenant1"
CLIENT_ID = "syncd-outlook-test"
SECRET = "client-secret-0f3a9c1d-never-logged"
SECRET_ENV = "SYNCD_TEST_OUTLOOK_SECRET"
STATE_KEY_ENV = "SYNCD_TEST_STATE_KEY"
WINDOW = account_policy(AccountConfig(name="w", provider="outlook", owner=ALICE)).window(START)


@dataclass
class Context:
    """Stands in for ``connectors.ConnectorContext`` (same three fields)."""

    owner_tz: str
    window: Window
    credentials: Any = None


@dataclass
class SharedContext:
    """``connectors.ConnectorContext``'s fields the connector reads, with ``shared`` (what
    the accounts of a process share: an app's token, the HTTP session)."""

    owner_tz: str = "Europe/Oslo"
    window: Window = WINDOW
    credentials: Any = None
    shared: dict[str, Any] | None = field(default_factory=dict)


class GuardedOutlook(OutlookCalendar):
    """Counts write ops and fails the test if one happens while ``forbid_writes`` is set."""

    forbid_writes = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ops: list[WriteOp] = []

    def write(self, ops: Sequence[WriteOp]) -> list[WriteResult]:
        assert not self.forbid_writes, f"unexpected writes: {ops}"
        self.ops.extend(ops)
        return super().write(ops)


@dataclass
class Env:
    """The two emulators and the session that reaches both."""

    identity: IdentityEmulator
    graph: GraphEmulator
    session: RoutingSession

    def account(self, name: str = "alice", user: str = ALICE, *, mode: str = "app",
                invite_guests: bool = False, **extra: Any) -> AccountConfig:
        auth: dict[str, Any] = {
            "mode": mode, "tenant": TENANT, "client_id": CLIENT_ID, "user": user,
            "authority": self.identity.authority(TENANT), "graph_url": self.graph.base_url,
        }
        if mode == "app":
            auth["client_secret"] = SecretRef(f"env:{SECRET_ENV}")
        return AccountConfig(name=name, provider="outlook", owner=user,
                             invite_guests=invite_guests, auth=auth, **extra)

    def connector(self, account: AccountConfig, *, credentials: Any = None,
                  window: Window = WINDOW, owner_tz: str = "Europe/Oslo",
                  cls: type[OutlookCalendar] = OutlookCalendar, **options: Any
                  ) -> OutlookCalendar:
        return cls(account, Context(owner_tz, window, credentials), session=self.session,
                   **options)

    def sign_in(self, account: AccountConfig, credentials: CredentialStore) -> str:
        """Device-code sign-in, the user approving as soon as the code is shown."""
        user = str(account.auth["user"])

        def approve(_message: str) -> None:
            for code in self.identity.pending_user_codes():
                self.identity.approve_device_code(code, user=user)

        return device_code_login(account, credentials, session=self.session, announce=approve)


@pytest.fixture(autouse=True)
def _fresh_mailbox_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mailbox gates are process-wide; a test's pauses must not outlive it (ports recur)."""
    monkeypatch.setattr(outlook_http, "_gates", {})


@pytest.fixture
def env(identity_emulator: IdentityEmulator,  # noqa: F811
        graph_emulator_with_identity: GraphEmulator,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    identity_emulator.register_app(CLIENT_ID, SECRET)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    monkeypatch.setenv(STATE_KEY_ENV, Fernet.generate_key().decode())
    graph_emulator_with_identity.add_mailbox(ALICE)
    with RoutingSession(identity_emulator) as session:
        yield Env(identity_emulator, graph_emulator_with_identity, session)


class GraphUser:
    """A person editing the mailbox in Outlook: emulator hooks, no syncd marker."""

    def __init__(self, graph: GraphEmulator, user: str = ALICE) -> None:
        self.graph = graph
        self.user = user

    def create(self, projection: Projection) -> str:
        when = projection.when
        if when.all_day:
            start = {"dateTime": f"{when.start}T00:00:00", "timeZone": when.tz}
            end = {"dateTime": f"{when.end}T00:00:00", "timeZone": when.tz}
        else:
            start = {"dateTime": when.local_start().replace(tzinfo=None).isoformat(),
                     "timeZone": when.tz}
            end = {"dateTime": when.local_end().replace(tzinfo=None).isoformat(),
                   "timeZone": when.tz}
        event = {"subject": projection.title, "start": start, "end": end,
                 "isAllDay": when.all_day, "showAs": "busy" if projection.busy else "free",
                 "body": {"contentType": "text", "content": projection.description},
                 "location": {"displayName": projection.location}}
        return str(self.graph.create_event_as_user(self.user, event)["id"])

    def edit(self, event_id: str, **values: Any) -> None:
        names = {"title": "subject", "busy": "showAs", "location": "location",
                 "description": "body"}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key == "busy":
                value = "busy" if value else "free"
            elif key == "location":
                value = {"displayName": value}
            elif key == "description":
                value = {"contentType": "text", "content": value}
            changes[names[key]] = value
        self.graph.put_event(self.user, event_id, changes)

    def delete(self, event_id: str) -> None:
        self.graph.delete_event_as_user(self.user, event_id)


@dataclass(kw_only=True)
class OutlookWorld(World):
    """The engine on SQLite against the Graph emulator; a new connector every cycle."""

    env: Env
    credentials: CredentialStore
    forbid_writes: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    cls: type[GuardedOutlook] = GuardedOutlook
    last: GuardedOutlook | None = None

    idle_requests: ClassVar[tuple[str, ...]] = ("GET",)  # one delta page
    #: Delta cannot carry our marker, so the echo's event is read again: the delta page, the
    #: calendar's id, then one $batch (its envelope, then the GET inside it).
    echo_requests: ClassVar[tuple[str, ...] | None] = ("GET", "GET", "POST", "GET")

    @property
    def upn(self) -> str:
        return str(self.account.auth["user"])

    def connector(self) -> GuardedOutlook:
        conn = self.env.connector(self.account, credentials=self.credentials,
                                  window=account_policy(self.account).window(self.now),
                                  cls=self.cls, **self.options)
        assert isinstance(conn, GuardedOutlook)
        conn.forbid_writes = self.forbid_writes
        return conn

    def cycle_connector(self) -> GuardedOutlook:
        self.last = self.connector()
        return self.last

    def release(self, connector: CalendarConnector) -> None:
        connector.close()

    def events(self) -> list[dict[str, Any]]:
        return self.env.graph.events(self.upn)

    # ---- the contract's view ----------------------------------------------------------------

    def sent(self) -> list[Sent]:
        return [Sent(r.method, f"{r.method} {r.url} {r.headers} "
                     + r.body.decode("utf-8", "replace"),
                     r.method in ("POST", "PATCH", "PUT", "DELETE")
                     and not r.path.endswith("/$batch"))
                for r in self.env.graph.requests]

    def forget_sent(self) -> None:
        self.env.graph.requests.clear()

    def user_edit(self, activity_id: int, title: str) -> None:
        self.env.graph.put_event(self.upn, self.event_id_of(activity_id), {"subject": title})

    def user_delete(self, activity_id: int) -> None:
        self.env.graph.delete_event_as_user(self.upn, self.event_id_of(activity_id))

    def _event(self, activity_id: int) -> dict[str, Any]:
        return self.env.graph.get_event(self.upn, self.event_id_of(activity_id))

    def event_title(self, activity_id: int) -> str:
        return str(self._event(activity_id)["subject"])

    def event_location(self, activity_id: int) -> str:
        return str((self._event(activity_id).get("location") or {}).get("displayName", ""))

    def markers(self) -> Counter[str]:
        marker = ext_prop_key(MARKER_PROP)
        return Counter(str(prop["value"]) for event in self.events()
                       for prop in event.get("singleValueExtendedProperties", [])
                       if ext_prop_key(prop["id"]) == marker)


def make_world(tmp_path: Path, env: Env, account: AccountConfig,
               db: Database | None = None) -> OutlookWorld:
    """A world for ``account`` (its mailbox must exist); pass ``db`` to share one."""
    db, store, owner_id = open_store(tmp_path, account.owner, db, name=account.name.title())
    credentials = CredentialStore(db, SecretRef(f"env:{STATE_KEY_ENV}"))
    return OutlookWorld(db=db, store=store, state=StateStore(db), account=account,
                        owner_id=owner_id, env=env, credentials=credentials)


@pytest.fixture
def world(tmp_path: Path, env: Env) -> OutlookWorld:
    """Alice, app-only, guests described (the default)."""
    return make_world(tmp_path, env, env.account())
