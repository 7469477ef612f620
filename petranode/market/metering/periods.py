"""Billing periods, the DSO's tariff and rosters from its registrations (SPEC §4.8). Pure.

Interval ``i`` belongs to billing period ``i // P`` (``P`` = ``billing_period_intervals``
of the DSO's ``[market]`` section). For each period the DSO signs one
:class:`~petranode.market.billing.PricePolicy` valid for exactly that period, and per feeder
one :class:`~petranode.market.aggregate.FeederRoster` of epoch = the period: the certified
meter keys registered on the feeder when the first meter of the feeder asked. A roster stays
fixed for its period (every meter must mask against the same one), so a meter registered
mid-period joins the aggregate at the next period.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from petranode.market.aggregate import MIN_ROSTER_METERS, FeederRoster
from petranode.market.billing import PricePolicy
from petranode.market.registry import CapacityBook, Registration
from petranode.market.settings import MarketConfig
from petranode.net.signing import Signer

#: Periods around the current one the DSO signs policies and rosters for on request: the
#: previous (late shares and bills), the current and the next (meters ask ahead).
PERIODS_AROUND: Final = 1


def period_of(interval: int, period_intervals: int) -> int:
    return interval // period_intervals


def period_range(period: int, period_intervals: int) -> tuple[int, int]:
    """The first and last interval of ``period``."""
    first = period * period_intervals
    return first, first + period_intervals - 1


def issue_policy(dso: Signer, network_id: str, config: MarketConfig, period: int) -> PricePolicy:
    """The DSO's tariff (``[market]`` prices) for one billing period. Deterministic."""
    first, last = period_range(period, config.billing_period_intervals)
    return PricePolicy.issue(
        dso, network_id, first_interval=first, last_interval=last,
        intervals_per_day=config.intervals_per_day,
        import_prices=config.slot_prices(config.import_prices),
        export_prices=config.slot_prices(config.export_prices))


def feeder_keys(registrations: Iterable[Registration], feeder: str) -> tuple[bytes, ...]:
    """The certified meter keys on ``feeder``, ascending."""
    return tuple(sorted({r.meter_key for r in registrations if r.feeder == feeder}))


def issue_roster(dso: Signer, network_id: str, feeder: str, period: int,
                 keys: tuple[bytes, ...]) -> FeederRoster | None:
    """The feeder's roster for ``period``; None below two meters (a sum of one is a reading)."""
    if len(keys) < MIN_ROSTER_METERS:
        return None
    return FeederRoster.issue(dso, network_id, feeder=feeder, epoch=period, meter_keys=keys)


def registrations_of(book: CapacityBook) -> list[Registration]:
    """Every registration in the DSO's book (through its persistence rows)."""
    return [Registration.decode(data) for _, data in book.to_rows().registrations]


def bill_range(policy: PricePolicy, first_metered: int, billed_through: int,
               next_interval: int) -> tuple[int, int] | None:
    """What a meter bills under ``policy`` now: the policy's period from the first interval it
    metered and did not bill, once the period's last interval is committed; None if nothing,
    or if that is less than a simulated day (a short bill would open too few intervals)."""
    if policy.last_interval >= next_interval or policy.last_interval <= billed_through:
        return None
    first = max(policy.first_interval, first_metered, billed_through + 1)
    if policy.last_interval - first + 1 < policy.intervals_per_day:
        return None
    return first, policy.last_interval
