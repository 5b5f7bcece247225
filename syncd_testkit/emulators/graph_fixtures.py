"""pytest fixtures for the Graph and identity emulators.

Import them into a test module
(``from syncd_testkit.emulators.graph_fixtures import graph_emulator``)
or list this module in a conftest's ``pytest_plugins``. Every fixture starts a fresh server on a
free loopback port and stops it after the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .graph import GraphEmulator
from .identity import IdentityEmulator

__all__ = ["graph_emulator", "graph_emulator_with_identity", "identity_emulator"]


@pytest.fixture
def identity_emulator() -> Iterator[IdentityEmulator]:
    """A started :class:`IdentityEmulator` with no registered apps."""
    with IdentityEmulator() as idp:
        yield idp
    assert idp.internal_errors == [], "the identity emulator hit a bug (answered 500)"


@pytest.fixture
def graph_emulator() -> Iterator[GraphEmulator]:
    """A started :class:`GraphEmulator` that accepts any bearer token (no identity emulator).

    No mailbox exists yet: call ``add_mailbox`` first. ``/me`` resolves to the first mailbox.
    """
    with GraphEmulator() as graph:
        yield graph
    assert graph.internal_errors == [], "the Graph emulator hit a bug (answered 500)"


@pytest.fixture
def graph_emulator_with_identity(
    identity_emulator: IdentityEmulator,
) -> Iterator[GraphEmulator]:
    """A started :class:`GraphEmulator` that only accepts tokens the identity emulator issued."""
    with GraphEmulator(identity=identity_emulator) as graph:
        yield graph
    assert graph.internal_errors == [], "the Graph emulator hit a bug (answered 500)"
