"""Outlook app-mode tokens shared by the accounts of one app registration in a process
(connectors.outlook_auth.AppShelf): a client-credentials token is the app's, so 400
accounts of one app need one grant, not 400 grants and 400 tenant discoveries."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from connectors.outlook import OutlookCalendar
from syncd.errors import AuthFailed
from syncd_testkit.emulators.identity import RoutingSession
from tests.outlook.conftest import Env, SharedContext
from tests.outlook.test_token_cache import CountingSession

MAILBOXES = [f"user{i}@contoso.test" for i in range(6)]


def connectors(env: Env, shared: dict[str, Any] | None,
               session: RoutingSession) -> list[OutlookCalendar]:
    for mailbox in MAILBOXES:
        env.graph.add_mailbox(mailbox)
    return [OutlookCalendar(env.account(f"a{i}", user=mailbox),
                            SharedContext(shared=shared), session=session)
            for i, mailbox in enumerate(MAILBOXES)]


def test_the_accounts_of_one_app_ask_for_one_token_in_a_process(env: Env) -> None:
    with CountingSession(env.identity) as session:
        for connector in connectors(env, {}, session):
            connector.changes(None)
        assert session.sign_ins == 2  # one tenant discovery, one grant, for six accounts
    assert len(env.identity.token_requests) == 1


def test_without_a_shared_memo_each_account_signs_in(env: Env) -> None:
    with CountingSession(env.identity) as session:
        for connector in connectors(env, None, session):
            connector.changes(None)
        assert session.sign_ins == 2 * len(MAILBOXES)  # as before: each on its own
    assert len(env.identity.token_requests) == len(MAILBOXES)


def test_first_cycles_at_once_wait_for_one_grant(env: Env) -> None:
    with CountingSession(env.identity) as session:
        opened = connectors(env, {}, session)
        threads = [threading.Thread(target=c.changes, args=(None,)) for c in opened]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(env.identity.token_requests) == 1
    assert len([r for r in env.graph.requests if r.status == 200]) >= len(MAILBOXES)


def test_a_refused_shared_token_is_replaced_once_for_every_account(env: Env) -> None:
    with CountingSession(env.identity) as session:
        opened = connectors(env, {}, session)
        cursors = [c.changes(None).cursor for c in opened]
        env.identity.expire_access_tokens()
        for connector, cursor in zip(opened, cursors, strict=True):
            connector.changes(cursor)  # the first meets a 401 and asks again
    assert len(env.identity.token_requests) == 2


def test_an_account_with_another_secret_never_gets_the_apps_token(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    shared: dict[str, Any] = {}
    with CountingSession(env.identity) as session:
        good = connectors(env, shared, session)[0]
        good.changes(None)
        monkeypatch.setenv("SYNCD_TEST_OUTLOOK_SECRET", "not-the-secret")
        wrong = OutlookCalendar(env.account("wrong", user=MAILBOXES[1]),
                                SharedContext(shared=shared), session=session)
        with pytest.raises(AuthFailed):
            wrong.changes(None)
