"""Schedules: seasons, hours and the night rule decide which classes a preset looks for."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest

from service.cameras.schedule import Hours, Schedule, Season

ALL = frozenset({"garbage_pile", "straw_burning"})
TZ = ZoneInfo("Asia/Shanghai")
HARVEST = Season(start="05-20", end="06-30")
WINTER = Season(start="12-01", end="02-28")


@pytest.mark.parametrize(
    ("schedule", "local", "expected"),
    [
        (Schedule(), datetime(2026, 6, 1, 12, 0), ALL),
        (Schedule(), datetime(2026, 6, 1, 23, 0), {"straw_burning"}),  # night: smoke only by default
        (Schedule(night_rule="skip"), datetime(2026, 6, 1, 3, 0), set()),
        (Schedule(night_rule="analyse"), datetime(2026, 6, 1, 3, 0), ALL),
        (Schedule(seasons=(HARVEST,)), datetime(2026, 6, 30, 12, 0), ALL),
        (Schedule(seasons=(HARVEST,)), datetime(2026, 7, 1, 12, 0), set()),
        (Schedule(seasons=(WINTER,)), datetime(2026, 1, 15, 12, 0), ALL),  # wraps the new year
        (Schedule(seasons=(WINTER,)), datetime(2026, 3, 1, 12, 0), set()),
        (Schedule(hours=(Hours(start=time(8), end=time(17)),)), datetime(2026, 6, 1, 17, 0), set()),
        (Schedule(hours=(Hours(start=time(8), end=time(17)),)), datetime(2026, 6, 1, 8, 0), ALL),
    ],
)
def test_classes_at(schedule, local, expected):
    assert schedule.classes_at(local.replace(tzinfo=TZ), ALL) == frozenset(expected)


@pytest.mark.parametrize("day", ["02-30", "13-01", "00-10"])
def test_season_refuses_days_that_do_not_exist(day):
    with pytest.raises(ValueError, match="calendar day"):
        Season(start=day, end="12-31")
