"""``[market]``: this node's simulated smart meter and, on the DSO, its default tariff and
billing period (SPEC §4.8; issue 7 item 8).

One frozen section; the node's config loader builds it from the TOML table and calls
:meth:`MarketConfig.validate`, which reports a wrong value in one line naming its dotted key.
The bounds repeat those of ``market/profiles.py`` and ``market/billing.py`` (this module sits
low in the layers so that ``config.py`` can gather it, and may not import them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

from petranode.errors import PetranodeError

#: ``profiles.MAX_POWER_W``.
_MAX_POWER_W: Final = 2**32 - 1
#: ``profiles.MAX_INTERVALS_PER_DAY`` and ``SECONDS_PER_DAY``.
_MAX_INTERVALS_PER_DAY: Final = 1440
_SECONDS_PER_DAY: Final = 86_400
#: ``billing.MAX_BILL_INTERVALS`` and ``billing.MAX_PRICE``.
_MAX_BILL_INTERVALS: Final = 4096
_MAX_PRICE: Final = 2**20 - 1
#: A tariff gives one price for the whole day or one per hour of the simulated day.
TARIFF_LENGTHS: Final = (1, 24)
#: Day 07:00–22:00 30 c/kWh, night 20 c/kWh (millicents per kWh), as in the tests of billing.
DEFAULT_IMPORT_PRICES: Final = tuple(30_000 if 7 <= hour < 22 else 20_000 for hour in range(24))
DEFAULT_EXPORT_PRICES: Final = (8_000,)


class MarketConfigInvalid(PetranodeError):
    """A ``[market]`` value is out of range; the message names the dotted key."""


@final
@dataclass(frozen=True, slots=True)
class MarketConfig:
    #: Peak solar output of this prosumer's simulated panels on a clear day at noon, W.
    solar_peak_w: int = 4000
    #: Base household load of the simulated profile, W (peaks are added morning and evening).
    base_load_w: int = 300
    #: Intervals per simulated day (divides 86400, at most 1440); every node of a network
    #: should use the same value (the DSO's tariff carries its own).
    intervals_per_day: int = 24
    #: DSO: intervals per billing period, one price policy and one feeder roster each. At
    #: least one simulated day, so a bill never opens less than a day of readings.
    billing_period_intervals: int = 24
    #: A recorded profile (``interval,production_w,consumption_w`` CSV) instead of the
    #: synthetic one; relative to the config file's folder. Empty: synthetic.
    profile_csv: str = ""
    #: Seed of the synthetic profiles' weather; empty: the network id (one sky per network).
    profile_seed: str = ""
    #: DSO: import prices, millicents per kWh, for the whole day (1 value) or per hour (24).
    import_prices: tuple[int, ...] = DEFAULT_IMPORT_PRICES
    #: DSO: export prices, millicents per kWh, 1 or 24 values.
    export_prices: tuple[int, ...] = DEFAULT_EXPORT_PRICES
    #: DSO: intervals after an interval's end that its feeder aggregates wait for late shares
    #: before they are declared unavailable.
    aggregate_grace_intervals: int = 2
    #: DSO: penalty per W·interval a seller sold and did not deliver, millicents (a debt
    #: collected with its bill).
    penalty_millicents_per_w: int = 3000
    #: Prosumer: mean seconds between cover transactions (zero-value transfers to itself,
    #: built and sent like any transfer); 0 turns cover off. Poisson-timed.
    cover_tx_interval_s: float = 30.0

    def validate(self) -> None:
        ipd = self.intervals_per_day
        checks = {
            "solar_peak_w": 0 <= self.solar_peak_w <= _MAX_POWER_W,
            "base_load_w": 0 <= self.base_load_w <= _MAX_POWER_W,
            "intervals_per_day": (1 <= ipd <= _MAX_INTERVALS_PER_DAY
                                  and _SECONDS_PER_DAY % ipd == 0),
            "billing_period_intervals": (1 <= ipd <= self.billing_period_intervals
                                         <= _MAX_BILL_INTERVALS),
            "profile_csv": "\x00" not in self.profile_csv,
            "profile_seed": len(self.profile_seed.encode()) <= 64,
            "import_prices": _prices_ok(self.import_prices),
            "export_prices": _prices_ok(self.export_prices),
            "aggregate_grace_intervals": 0 <= self.aggregate_grace_intervals <= 1000,
            "penalty_millicents_per_w": 0 <= self.penalty_millicents_per_w <= 10**9,
            "cover_tx_interval_s": (self.cover_tx_interval_s == 0
                                    or 1.0 <= self.cover_tx_interval_s <= 86_400),
        }
        for key, ok in checks.items():
            if not ok:
                raise MarketConfigInvalid(f"market.{key}: out of range")

    def profile_path(self, base_dir: Path) -> Path | None:
        """The recorded profile's file, resolved against the config file's folder, or None."""
        return (base_dir / self.profile_csv).resolve() if self.profile_csv else None

    def slot_prices(self, prices: tuple[int, ...]) -> tuple[int, ...]:
        """One price per slot of the simulated day: the price of the hour the slot starts in."""
        ipd = self.intervals_per_day
        if len(prices) == 1:
            return prices * ipd
        return tuple(prices[slot * 24 // ipd] for slot in range(ipd))


def _prices_ok(prices: tuple[int, ...]) -> bool:
    return len(prices) in TARIFF_LENGTHS and all(0 <= p <= _MAX_PRICE for p in prices)
