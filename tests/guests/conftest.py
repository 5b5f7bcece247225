"""The three providers' fixtures, for the guest-mail scenarios."""

from __future__ import annotations

from tests.emulators.google_fixtures import google_emulator  # noqa: F401
from tests.emulators.graph_fixtures import (  # noqa: F401
    graph_emulator_with_identity,
    identity_emulator,
)
from tests.outlook.conftest import _fresh_mailbox_gates, env  # noqa: F401
