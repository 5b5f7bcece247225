"""The connector contract on the in-memory reference connector."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connectors.memory import MemoryCalendar
from syncd.model import Projection
from tests.contract import ConnectorContract


class MemoryUser:
    def __init__(self, calendar: MemoryCalendar) -> None:
        self.calendar = calendar
        self.n = 0

    def create(self, projection: Projection) -> str:
        self.n += 1
        return self.calendar.user_create(f"user-{self.n}", projection).event_id

    def edit(self, event_id: str, **values: Any) -> None:
        self.calendar.user_edit(event_id, **values)

    def delete(self, event_id: str) -> None:
        self.calendar.user_delete(event_id)


class TestMemoryContract(ConnectorContract):
    @pytest.fixture
    def connector(self) -> MemoryCalendar:
        return MemoryCalendar()

    @pytest.fixture
    def calendar_user(self, connector: MemoryCalendar) -> MemoryUser:
        return MemoryUser(connector)

    @pytest.fixture
    def expired_cursor(self, connector: MemoryCalendar) -> Callable[[str], str]:
        def expire(cursor: str) -> str:
            connector.oldest_cursor = connector.head + 1
            return cursor

        return expire
