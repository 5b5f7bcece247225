"""Fuzzing ``connectors.ical.read_event``: whatever a calendar object holds, it answers."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from connectors.ical import read_event, read_instances
from tests.hostile.jsonread_fuzz import ZONES, check, ics_objects

FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(ics_objects(), st.sampled_from(ZONES))
def test_fuzz_ical_reader_answers_with_a_projection_or_a_problem(
        data: bytes, default_tz: str) -> None:
    event = check(read_event("/cal/fuzz.ics", '"1"', data, default_tz=default_tz,
                             owner="owner@example.com"))
    target(1.0 if event.projection is not None else 0.0, label="readable")


@FUZZ
@given(ics_objects(), st.sampled_from(ZONES))
def test_fuzz_ical_instance_reader_answers_for_every_occurrence(data: bytes,
                                                               default_tz: str) -> None:
    for event, kind in read_instances("/cal/fuzz.ics", '"1"', data, default_tz=default_tz,
                                      owner="owner@example.com"):
        check(event)
        assert kind in (None, "busy", "tentative")
        assert kind is None or (event.projection is not None and event.projection.busy)
