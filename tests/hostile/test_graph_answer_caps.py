"""A Graph endpoint that answers without end: syncd reads to its cap, then stops.

The account's mailbox sits behind a :class:`~syncd_testkit.flood.FloodServer` in front of
the Graph emulator; the real connector reads through it with ``requests`` (and msal, for
the token endpoint). Once a delta page or a ``$batch`` answer is hostile, that account's
cycle fails with the cap's sentence, the server could send no more than the cap (plus
socket buffers), nothing already synced is lost, and an account on the healthy emulator
syncs as usual.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.answer_caps import MAX_ANSWER_BYTES, MAX_TOKEN_ANSWER_BYTES
from connectors.outlook_auth import AppTokens
from syncd.errors import AnswerTooLarge
from syncd.store.db import Database
from syncd_testkit.emulators.graph_fixtures import (  # noqa: F401 - pytest fixtures
    graph_emulator_with_identity,
    identity_emulator,
)
from syncd_testkit.emulators.identity import IdentityEmulator, RoutingSession
from syncd_testkit.flood import FloodServer
from syncd_testkit.world import World
from tests.hostile.answer_caps import (
    LYING,
    OVERSIZE,
    Side,
    check_stopped_at_the_cap,
    lying_length,
    oversize_batch,
    oversize_listing,
)
from tests.outlook.conftest import (  # noqa: F401 - pytest fixtures
    BOB,
    Env,
    OutlookWorld,
    _fresh_mailbox_gates,
    env,
    make_world,
)


@pytest.fixture
def flood(env: Env) -> Iterator[FloodServer]:  # noqa: F811
    with FloodServer(env.graph.origin, flood=lambda method, path: False) as server:
        yield server


@pytest.fixture
def worlds(tmp_path: Path, env: Env,  # noqa: F811
           flood: FloodServer) -> tuple[OutlookWorld, OutlookWorld]:
    """Alice behind the flood server, Bob straight on the emulator, one database."""
    env.graph.add_mailbox(BOB)
    db = Database(f"sqlite:///{tmp_path / 'syncd.db'}")
    alice_account = env.account(import_events=True)
    alice_account.auth["graph_url"] = env.graph.base_url.replace(env.graph.origin,
                                                                 flood.origin)
    alice = make_world(tmp_path, env, alice_account, db=db)
    bob = make_world(tmp_path, env, env.account("bob", BOB, import_events=True), db=db)
    return alice, bob


def _titles(world: World) -> list[str]:
    assert isinstance(world, OutlookWorld)
    return sorted(str(e["subject"]) for e in world.events())


GRAPH = Side(listing=lambda method, path: method == "GET" and "/delta" in path,
             batch=lambda method, path: method == "POST" and path.endswith("/$batch"),
             titles=_titles)


@pytest.mark.parametrize("kind", OVERSIZE)
def test_an_oversize_delta_page_fails_the_account_at_the_cap_and_loses_nothing(
        worlds: tuple[OutlookWorld, OutlookWorld], flood: FloodServer, kind: str) -> None:
    flood.kind = kind
    oversize_listing(*worlds, flood, GRAPH, MAX_ANSWER_BYTES)


def test_an_oversize_batch_answer_fails_its_writes_which_go_out_once_next_cycle(
        worlds: tuple[OutlookWorld, OutlookWorld], flood: FloodServer) -> None:
    oversize_batch(*worlds, flood, GRAPH, MAX_ANSWER_BYTES)


@pytest.mark.parametrize("kind", LYING)
def test_a_lying_content_length_fails_the_delta_without_reading_past_it(
        worlds: tuple[OutlookWorld, OutlookWorld], flood: FloodServer, kind: str) -> None:
    flood.kind = kind
    lying_length(*worlds, flood, GRAPH)


class _IdentityBehind(RoutingSession):
    """msal's session, sending the identity platform's requests through ``flood``."""

    def __init__(self, identity: IdentityEmulator, flood: FloodServer) -> None:
        super().__init__(identity)
        self.identity_url, self.flood_url = identity.base_url, flood.origin

    def rewrite(self, url: str) -> str:
        return super().rewrite(url).replace(self.identity_url, self.flood_url)


def test_a_token_endpoint_answering_without_end_is_read_to_the_token_cap(
        env: Env) -> None:  # noqa: F811
    flood = FloodServer(env.identity.base_url, "endless",
                        flood=lambda method, path: path.endswith("/token"))
    with flood, _IdentityBehind(env.identity, flood) as session, \
            pytest.raises(AnswerTooLarge) as caught:
        AppTokens(env.account().auth, session).token()
    assert caught.value.limit == MAX_TOKEN_ANSWER_BYTES
    check_stopped_at_the_cap(flood, MAX_TOKEN_ANSWER_BYTES)
