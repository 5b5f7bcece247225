"""The three providers' fixtures, for the guest-mail scenarios."""

from __future__ import annotations

from syncd_testkit.emulators.google_fixtures import google_emulator  # noqa: F401
from syncd_testkit.emulators.graph_fixtures import (  # noqa: F401
    graph_emulator_with_identity,
    identity_emulator,
)
from tests.outlook.conftest import _fresh_mailbox_gates, env  # noqa: F401
