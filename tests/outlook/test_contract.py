"""The connector contract against the Graph emulator, plus the describe-guests round trip."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator

import pytest

from connectors.outlook import OutlookCalendar
from syncd.model import FIELDS
from tests.contract import ConnectorContract, create, rich
from tests.outlook.conftest import ALICE, Env, GraphUser


class TestOutlookContract(ConnectorContract):
    """Guests are real attendees here, because the contract's rich() projection has guests."""

    @pytest.fixture
    def connector(self, env: Env) -> Iterator[OutlookCalendar]:
        conn = env.connector(env.account(invite_guests=True))
        yield conn
        conn.close()

    @pytest.fixture
    def calendar_user(self, env: Env) -> GraphUser:
        return GraphUser(env.graph)

    @pytest.fixture
    def expired_cursor(self, env: Env) -> Callable[[str], str]:
        def expire(cursor: str) -> str:
            env.graph.expire_delta_tokens(ALICE)
            return cursor

        return expire


def test_describe_mode_round_trips_guests_through_the_body_without_attendees(env: Env) -> None:
    connector = env.connector(env.account())
    assert connector.capabilities.fields == frozenset(FIELDS) - {"guests"}
    event = create(connector, rich())
    stored = connector.get(event.event_id)
    assert stored is not None and stored.projection == rich()
    raw = env.graph.get_event(ALICE, event.event_id)
    assert raw["attendees"] == []
    # The emulator renders the stored text body as HTML, as Exchange does.
    body = html.unescape(raw["body"]["content"])
    assert "Guests: Ada Lovelace <ada@example.com>, bob@example.org" in body
    assert env.graph.invitations_sent == 0


def test_invite_mode_writes_attendees_and_reads_them_back(env: Env) -> None:
    connector = env.connector(env.account(invite_guests=True))
    assert "guests" in connector.capabilities.fields
    event = create(connector, rich(), invited=rich().guests)
    raw = env.graph.get_event(ALICE, event.event_id)
    assert sorted(a["emailAddress"]["address"] for a in raw["attendees"]) == [
        "ada@example.com", "bob@example.org"]
    assert "Guests:" not in raw["body"]["content"]
    assert env.graph.invitations_by_recipient == {"ada@example.com": 1, "bob@example.org": 1}
