"""Fuzzing the Graph mapper: whatever a Graph event holds, it answers, never raises."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from connectors.outlook_map import read_event
from tests.hostile.jsonread_fuzz import ZONES, check, graph_events

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(graph_events(), st.booleans(), st.sampled_from(ZONES), st.none() | st.just("m" * 32))
def test_fuzz_graph_mapper_answers_with_a_projection_or_a_problem(
        data: Any, describe_guests: bool, fallback_tz: str, marker: str | None) -> None:
    event = check(read_event(data, fallback_tz=fallback_tz, mailbox="owner@example.com",
                             describe_guests=describe_guests, marker=marker))
    target(1.0 if event.projection is not None else 0.0, label="readable")
    target(float(len(data) if isinstance(data, dict) else 0), label="fields")
