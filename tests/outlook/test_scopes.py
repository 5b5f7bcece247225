"""The Graph permissions syncd asks for are pinned (security point 3.2).

Widening them is a product decision, not a refactoring: a delegated account reaches its
own mailbox's calendars and nothing else (no ``Calendars.ReadWrite.Shared``, no mail);
an app-only account gets what the tenant's admin granted the app registration, which is
where the mailbox scoping (RBAC for Applications) is done.
"""

from __future__ import annotations

from connectors.outlook_auth import DELEGATED_SCOPES, GRAPH_APP_SCOPES


def test_the_delegated_scope_is_pinned_to_calendars_read_write() -> None:
    assert DELEGATED_SCOPES == ["https://graph.microsoft.com/Calendars.ReadWrite"]


def test_an_app_only_token_asks_for_the_apps_granted_permissions_alone() -> None:
    assert GRAPH_APP_SCOPES == ["https://graph.microsoft.com/.default"]
