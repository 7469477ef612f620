"""Deterministic household profiles for the simulated smart meters (SPEC §4.8).

Theory of operation
-------------------
A profile answers one question: what did this household consume and produce, as average
power in integer watts, during interval ``i``? Interval 0 starts at the genesis; a
*simulated day* is ``intervals_per_day`` intervals (24: hourly, 96: quarter-hourly), whatever
their wall-clock length, so an accelerated testnet still sees sunrise, a midday solar peak
and an evening load peak. Interval ``i`` is slot ``i mod intervals_per_day`` of simulated day
``i div intervals_per_day`` and stands for ``86400 / intervals_per_day`` simulated seconds;
the profile is evaluated at the slot's midpoint.

Everything is integer arithmetic over a hash, so a profile gives the same watts on every
machine and Python version (``math.sin`` may differ in the last bit between libms, and a
rounding boundary would then move a reading):

* **Solar** (:meth:`SyntheticProfile.production_w`): a clear-sky bell over daylight
  06:00–18:00, ``capacity·(4u(D−u))²/D⁴`` with ``u`` seconds since sunrise and ``D`` the day
  length (peak = capacity at noon, zero at the edges), times the day's *weather* (clearness
  20–100 %, from ``(seed, day)``: one sky for every meter of the network) times local *cloud
  noise* (70–100 %, from ``(seed, meter id, interval)``).
* **Load** (:meth:`SyntheticProfile.consumption_w`): a base load plus a morning peak
  (07:30 ± 2 h) and an evening peak (19:00 ± 3 h), each a parabolic bump, times noise
  85–115 % from ``(seed, meter id, interval)``.

Noise is the first 8 bytes of BLAKE2b over the canonical encoding of
``[domain, what, seed, meter id, interval-or-day]``: independent streams per purpose.

Real profiles can be imported instead (:func:`parse_profile_csv`): the caller reads the file
(this module does no I/O) and passes its text; a recorded profile repeats from its first row
once its rows run out. Files are refused with :class:`ProfileInvalid` naming the line.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Final, Protocol, final

from petranode.market.errors import ProfileFault, ProfileInvalid
from petranode.market.registry import MAX_POWER_W
from petranode.wire import codec

log = logging.getLogger(__name__)

SECONDS_PER_DAY: Final = 86_400
DEFAULT_INTERVALS_PER_DAY: Final = 96
#: One-minute simulated intervals at most: finer slots add nothing to a household profile.
MAX_INTERVALS_PER_DAY: Final = 1440

SUNRISE_S: Final = 6 * 3600
SUNSET_S: Final = 18 * 3600
MORNING_PEAK_S: Final = 7 * 3600 + 1800
MORNING_HALF_WIDTH_S: Final = 2 * 3600
EVENING_PEAK_S: Final = 19 * 3600
EVENING_HALF_WIDTH_S: Final = 3 * 3600
PERMILLE: Final = 1000
#: Day clearness 20 … 100 % (overcast to clear sky), cloud noise 70 … 100 %, load noise ±15 %.
CLEARNESS_RANGE: Final = (200, 1000)
CLOUD_RANGE: Final = (700, 1000)
LOAD_NOISE_RANGE: Final = (850, 1150)

NOISE_DOMAIN: Final = "petranode/market/profile-noise/v1"

CSV_HEADER: Final = "interval,production_w,consumption_w"
#: A year of one-minute rows: the largest real profile worth importing.
MAX_PROFILE_ROWS: Final = 366 * MAX_INTERVALS_PER_DAY
#: A row is at most 3×10 digits and 2 commas (+ CRLF); 64 characters per line is generous,
#: and bounds the text before any parsing.
MAX_LINE_CHARS: Final = 64
MAX_PROFILE_CHARS: Final = MAX_LINE_CHARS * (MAX_PROFILE_ROWS + 1)
_ROW: Final = re.compile(r"(0|[1-9][0-9]{0,9}),(0|[1-9][0-9]{0,9}),(0|[1-9][0-9]{0,9})")


def check_intervals_per_day(intervals_per_day: int) -> None:
    """A simulated day must split into whole seconds: 1 … 1440 slots dividing 86400."""
    if not 1 <= intervals_per_day <= MAX_INTERVALS_PER_DAY:
        raise ValueError(f"intervals_per_day must be 1..{MAX_INTERVALS_PER_DAY}")
    if SECONDS_PER_DAY % intervals_per_day:
        raise ValueError("intervals_per_day must divide 86400")


def slot_midpoint_s(interval: int, intervals_per_day: int) -> int:
    """Seconds since simulated midnight at the middle of ``interval``'s slot."""
    length = SECONDS_PER_DAY // intervals_per_day
    return (interval % intervals_per_day) * length + length // 2


@final
@dataclass(frozen=True, slots=True)
class Reading:
    """A meter's reading for one interval: average power in W. Private: its repr shows none."""

    consumption_w: int
    production_w: int

    def __post_init__(self) -> None:
        for what, value in (("consumption", self.consumption_w),
                            ("production", self.production_w)):
            if not 0 <= value <= MAX_POWER_W:
                raise ValueError(f"{what} must be 0..{MAX_POWER_W} W")

    @property
    def net_w(self) -> int:
        """Net load: consumption − production (negative while exporting)."""
        return self.consumption_w - self.production_w

    def __repr__(self) -> str:
        # A per-interval reading is exactly what must not reach a log line (SPEC §4.8).
        return "Reading(…)"


class Profile(Protocol):
    """Something that knows a household's reading for every interval."""

    def reading(self, interval: int) -> Reading: ...


def _noise(what: str, seed: bytes, meter_id: bytes, index: int, bounds: tuple[int, int]) -> int:
    """A deterministic integer uniform-ish in ``bounds`` (inclusive) for one purpose."""
    digest = hashlib.blake2b(
        codec.encode([NOISE_DOMAIN, what, seed, meter_id, index]), digest_size=8
    ).digest()
    low, high = bounds
    return low + int.from_bytes(digest, "little") % (high - low + 1)


def clear_sky_w(capacity_w: int, second_of_day: int) -> int:
    """The clear-sky bell: ``capacity·(4u(D−u))²/D⁴`` over daylight, 0 at night."""
    if not SUNRISE_S < second_of_day < SUNSET_S:
        return 0
    day = SUNSET_S - SUNRISE_S
    u = second_of_day - SUNRISE_S
    return capacity_w * (4 * u * (day - u)) ** 2 // day**4


def _bump(amplitude_w: int, second_of_day: int, centre_s: int, half_width_s: int) -> int:
    """A parabolic peak: ``amplitude`` at ``centre``, 0 beyond ± ``half_width``."""
    d = second_of_day - centre_s
    return amplitude_w * max(0, half_width_s**2 - d * d) // half_width_s**2


def _check_interval(interval: int) -> None:
    if interval < 0:
        raise ValueError("interval must be non-negative")


@final
@dataclass(frozen=True, slots=True)
class SyntheticProfile:
    """A deterministic solar + household load profile for one meter (see the module notes)."""

    #: Network-wide simulation seed: the same seed gives every meter the same weather.
    seed: bytes
    #: The meter's id (its public key): decorrelates the noise of neighbouring meters.
    meter_id: bytes
    #: Peak solar output on a clear day at noon, W (0: no panels).
    capacity_w: int
    base_load_w: int = 300
    morning_peak_w: int = 1200
    evening_peak_w: int = 2500
    intervals_per_day: int = DEFAULT_INTERVALS_PER_DAY

    def __post_init__(self) -> None:
        check_intervals_per_day(self.intervals_per_day)
        for what, value in (("capacity_w", self.capacity_w), ("base_load_w", self.base_load_w),
                            ("morning_peak_w", self.morning_peak_w),
                            ("evening_peak_w", self.evening_peak_w)):
            if not 0 <= value <= MAX_POWER_W:
                raise ValueError(f"{what} must be 0..{MAX_POWER_W} W")

    def production_w(self, interval: int) -> int:
        _check_interval(interval)
        clear = clear_sky_w(self.capacity_w, slot_midpoint_s(interval, self.intervals_per_day))
        if clear == 0:
            return 0
        day = interval // self.intervals_per_day
        clearness = _noise("weather", self.seed, b"", day, CLEARNESS_RANGE)
        cloud = _noise("cloud", self.seed, self.meter_id, interval, CLOUD_RANGE)
        return clear * clearness * cloud // (PERMILLE * PERMILLE)

    def consumption_w(self, interval: int) -> int:
        _check_interval(interval)
        second = slot_midpoint_s(interval, self.intervals_per_day)
        shape = (self.base_load_w
                 + _bump(self.morning_peak_w, second, MORNING_PEAK_S, MORNING_HALF_WIDTH_S)
                 + _bump(self.evening_peak_w, second, EVENING_PEAK_S, EVENING_HALF_WIDTH_S))
        noise = _noise("load", self.seed, self.meter_id, interval, LOAD_NOISE_RANGE)
        return min(MAX_POWER_W, shape * noise // PERMILLE)

    def reading(self, interval: int) -> Reading:
        return Reading(consumption_w=self.consumption_w(interval),
                       production_w=self.production_w(interval))


@final
@dataclass(frozen=True, slots=True)
class RecordedProfile:
    """An imported profile: row ``k`` is interval ``k``; it repeats once the rows run out."""

    #: ``(production_w, consumption_w)`` per interval, in file order.
    rows: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.rows) <= MAX_PROFILE_ROWS:
            raise ValueError(f"a recorded profile has 1..{MAX_PROFILE_ROWS} rows")

    def reading(self, interval: int) -> Reading:
        _check_interval(interval)
        production, consumption = self.rows[interval % len(self.rows)]
        return Reading(consumption_w=consumption, production_w=production)

    def __repr__(self) -> str:
        return f"RecordedProfile({len(self.rows)} rows)"


def parse_profile_csv(text: str, *, max_rows: int = MAX_PROFILE_ROWS) -> RecordedProfile:
    """Parse ``interval,production_w,consumption_w`` text into a :class:`RecordedProfile`.

    Strict: the header exactly, then one row per interval 0, 1, 2, … with unsigned decimal
    integers (no sign, spaces or leading zeros) of at most 2³²−1 W; LF or CRLF line ends; one
    final line end optional. Raises :class:`ProfileInvalid` naming the first bad line.
    """
    if len(text) > min(MAX_PROFILE_CHARS, MAX_LINE_CHARS * (max_rows + 1)):
        raise ProfileInvalid(ProfileFault.BAD_SIZE, 0, "file too large")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or _strip_cr(lines[0]) != CSV_HEADER:
        raise ProfileInvalid(ProfileFault.BAD_HEADER, 1, f"expected {CSV_HEADER!r}")
    if len(lines) == 1:
        raise ProfileInvalid(ProfileFault.BAD_SIZE, 0, "no rows")
    if len(lines) - 1 > max_rows:
        raise ProfileInvalid(ProfileFault.BAD_SIZE, max_rows + 2, f"more than {max_rows} rows")
    rows = tuple(_parse_row(_strip_cr(line), number) for number, line in enumerate(lines[1:], 2))
    return RecordedProfile(rows)


def _strip_cr(line: str) -> str:
    return line.removesuffix("\r")


def _parse_row(line: str, number: int) -> tuple[int, int]:
    match = _ROW.fullmatch(line)
    if match is None:
        raise ProfileInvalid(ProfileFault.MALFORMED_ROW, number,
                             "expected three unsigned decimal integers")
    interval, production, consumption = (int(g) for g in match.groups())
    if interval != number - 2:
        raise ProfileInvalid(ProfileFault.NOT_CONSECUTIVE, number,
                             f"expected interval {number - 2}")
    if production > MAX_POWER_W or consumption > MAX_POWER_W:
        raise ProfileInvalid(ProfileFault.OUT_OF_RANGE, number, f"power above {MAX_POWER_W} W")
    return production, consumption
