"""``[push]``: its defaults, and every problem of it reported with the rest."""

from __future__ import annotations

import pytest

from connectors import provider_options
from syncd.config import PushConfig, parse_config
from syncd.errors import ConfigError

PROVIDERS = provider_options()


def test_push_defaults_to_a_15_minute_backstop_and_3_minutes_of_liveness() -> None:
    assert parse_config({}, "x.toml", PROVIDERS).push == PushConfig(15, 180)
    config = parse_config({"push": {"backstop_minutes": 30, "liveness_seconds": 60}},
                          "x.toml", PROVIDERS)
    assert config.push == PushConfig(backstop_minutes=30, liveness_seconds=60)


def test_every_push_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"push": {"backstop_minutes": 0, "liveness_seconds": "3 min",
                               "renew": True},
                      "http": {"max_body_bytes": -1}}, "x.toml", PROVIDERS)
    keys = sorted(p.key for p in caught.value.problems)
    assert keys == ["http.max_body_bytes", "push.backstop_minutes", "push.liveness_seconds",
                    "push.renew"]
