"""``[market]``: defaults valid, each bad value named by its dotted key, tariff expansion."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from petranode.market.settings import MarketConfig, MarketConfigInvalid


def test_defaults_are_valid() -> None:
    MarketConfig().validate()


@pytest.mark.parametrize(("key", "value"), [
    ("solar_peak_w", -1),
    ("base_load_w", 2**32),
    ("intervals_per_day", 7),  # does not divide 86400
    ("intervals_per_day", 2880),
    ("billing_period_intervals", 23),  # shorter than a simulated day of 24
    ("billing_period_intervals", 4097),
    ("import_prices", (1, 2)),
    ("export_prices", (2**20,)),
    ("aggregate_grace_intervals", -1),
])
def test_bad_values_name_their_key(key: str, value: Any) -> None:
    config = dataclasses.replace(MarketConfig(), **{key: value})
    with pytest.raises(MarketConfigInvalid, match=rf"^market\.{key}: "):
        config.validate()


def test_slot_prices_follow_the_hour_of_each_slot() -> None:
    config = MarketConfig(intervals_per_day=4, billing_period_intervals=4)
    hourly = tuple(range(24))
    assert config.slot_prices(hourly) == (0, 6, 12, 18)
    assert config.slot_prices((7,)) == (7, 7, 7, 7)
    assert MarketConfig(intervals_per_day=96).slot_prices(hourly)[4:8] == (1, 1, 1, 1)


def test_profile_path_is_relative_to_the_config_folder(tmp_path: Path) -> None:
    assert MarketConfig().profile_path(tmp_path) is None
    assert MarketConfig(profile_csv="p.csv").profile_path(tmp_path) == tmp_path / "p.csv"
