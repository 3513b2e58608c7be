"""When a camera preset is analysed, and for which classes: seasons, hours and the night rule.

Pure: a schedule and a local time in, the classes to look for out. Straw burning is watched
in its seasons (after the summer and autumn harvests) and around the clock; garbage and
sheds cannot be seen at night on a visible-light camera, so the night rule can narrow a
night's analysis to smoke and fire (`smoke_only`) or stop it (`skip`).
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NightRule = Literal["analyse", "smoke_only", "skip"]
# Classes still visible at night on a visible-light camera: flames and lit smoke.
NIGHT_VISIBLE_CLASSES = frozenset({"straw_burning"})


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Season(_Config):
    """A date range each year, "MM-DD" inclusive at both ends; may wrap the new year (12-01 .. 02-28)."""

    start: str = Field(pattern=r"^\d\d-\d\d$", description="First day, MM-DD.")
    end: str = Field(pattern=r"^\d\d-\d\d$", description="Last day, MM-DD.")

    @field_validator("start", "end")
    @classmethod
    def _real_day(cls, value: str) -> str:
        month, day = int(value[:2]), int(value[3:])
        try:
            datetime(2024, month, day)  # a leap year: 02-29 is a real day
        except ValueError:
            raise ValueError(f"expected a calendar day MM-DD, got {value!r}") from None
        return value

    def contains(self, local: datetime) -> bool:
        today = local.strftime("%m-%d")
        if self.start <= self.end:
            return self.start <= today <= self.end
        return today >= self.start or today <= self.end


class Hours(_Config):
    """A daily window [start, end); may wrap midnight (19:00 .. 06:00). start == end: all day."""

    start: time
    end: time

    def contains(self, local: datetime) -> bool:
        now = local.time().replace(tzinfo=None)
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end


class Schedule(_Config):
    """Empty `seasons` or `hours` mean all year and all day."""

    seasons: tuple[Season, ...] = Field(default=(), description="Date ranges analysed; none: all year.")
    hours: tuple[Hours, ...] = Field(default=(), description="Daily windows analysed; none: all day.")
    night: Hours = Field(
        default=Hours(start=time(19, 0), end=time(6, 0)), description="What counts as night."
    )
    night_rule: NightRule = Field(
        default="smoke_only",
        description="At night: analyse every class, only smoke and fire (visible-light cameras), or skip.",
    )

    def classes_at(self, local: datetime, classes: frozenset[str]) -> frozenset[str]:
        """The classes to look for at `local` (an aware time in the office's zone); empty: not now."""
        if self.seasons and not any(season.contains(local) for season in self.seasons):
            return frozenset()
        if self.hours and not any(window.contains(local) for window in self.hours):
            return frozenset()
        if self.night.contains(local):
            if self.night_rule == "skip":
                return frozenset()
            if self.night_rule == "smoke_only":
                return classes & NIGHT_VISIBLE_CLASSES
        return classes
