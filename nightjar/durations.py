"""Durations in configuration: `30m`, `3h`, `7d`, or a bare number of days.

Window lengths and label horizons are durations. One type parses them all, so every key that
takes a duration accepts and rejects the same spellings, and a rejected one is reported under
its key (pydantic puts the key in front of the `ValueError` raised here).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

Unit = Literal["m", "h", "d"]
MINUTE_MICROS = 60_000_000
HOUR_MICROS = 60 * MINUTE_MICROS
DAY_MICROS = 24 * HOUR_MICROS
_UNIT_MICROS = {"m": MINUTE_MICROS, "h": HOUR_MICROS, "d": DAY_MICROS}
_SPELLING = re.compile(r"([0-9]+)([mhd]?)")
LONGEST_DAYS = 3650  # ten years: longer is a typo, not a window


@dataclass(frozen=True)
class Duration:
    """A positive length of time as configuration writes it: `amount` of `unit` (minutes, hours or days).

    Kept as written, not normalised, because feature names follow the spelling (`_3h`, `_30d`):
    `24h` and `1d` are the same length but name different features.
    """

    amount: int
    unit: Unit

    @classmethod
    def parse(cls, value: object) -> Duration:
        """Read `30m`, `3h`, `7d`, or a bare whole number (or digits) meaning days.

        Raises:
            ValueError: anything else, a zero or negative length, or more than 3650 days.
        """
        if isinstance(value, Duration):
            return value
        # bool is an int in Python, but YAML's `yes` is not a duration; nor is 1.5.
        spelled = isinstance(value, (int, str)) and not isinstance(value, bool)
        match = _SPELLING.fullmatch(str(value)) if spelled else None
        if match is None:
            raise ValueError(f"{value!r} is not a duration: write 30m, 3h or 7d (a bare number means days)")
        duration = cls(int(match[1]), match[2] or "d")  # type: ignore[arg-type]
        if duration.amount < 1:
            raise ValueError(f"{value!r} is not a duration: it must be longer than 0")
        if duration.micros > LONGEST_DAYS * DAY_MICROS:
            raise ValueError(f"{value!r} is longer than {LONGEST_DAYS} days")
        return duration

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        # Configuration models declare fields as `Duration`; they validate through `parse` and dump
        # as written, so a dumped configuration (model metadata, fingerprints) reads back the same.
        return core_schema.no_info_plain_validator_function(
            cls.parse, serialization=core_schema.plain_serializer_function_ser_schema(lambda d: d.written),
        )

    @property
    def micros(self) -> int:
        """The length in microseconds, Spark's timestamp resolution."""
        return self.amount * _UNIT_MICROS[self.unit]

    @property
    def whole_days(self) -> int | None:
        """The length in days when it is a whole number of days (`2d`, `48h`), else None."""
        days, rest = divmod(self.micros, DAY_MICROS)
        return None if rest else days

    @property
    def days_spanned(self) -> int:
        """The calendar days a window of this length starting or ending at midnight touches (rounded up)."""
        return -(-self.micros // DAY_MICROS)

    @property
    def grain_micros(self) -> int:
        """The coarsest of a day, an hour or a minute that divides the length: the bucket it can be counted in."""
        return next(unit for unit in (DAY_MICROS, HOUR_MICROS, MINUTE_MICROS) if self.micros % unit == 0)

    def plus_days(self, days: int) -> Duration:
        """This length and `days` more, in this length's unit (`48h` plus 6 days is `192h`)."""
        return Duration(self.amount + days * DAY_MICROS // _UNIT_MICROS[self.unit], self.unit)

    @property
    def written(self) -> int | str:
        """As configuration writes it: a bare number of days for days (as before durations existed), else `3h`."""
        return self.amount if self.unit == "d" else str(self)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"
