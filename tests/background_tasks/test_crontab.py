"""Crontab strings mean what they mean in cron, weekday 0 = Sunday included."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from background_tasks.crontab import cron_trigger, day_of_week_field

SATURDAY_NOON = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("0", "sun"),
        ("7", "sun"),
        ("sun", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("0-6", "sun,mon,tue,wed,thu,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("1/3", "mon,thu"),
        ("6,0", "sun,sat"),
        ("*", "*"),
    ],
)
def test_day_of_week_uses_crontab_numbering(field, days):
    assert day_of_week_field(field) == days


def test_default_schedules_fire_when_documented():
    assert cron_trigger("0 1 * * 0").get_next_fire_time(None, SATURDAY_NOON) == datetime(2026, 11, 22, 1, 0, tzinfo=UTC)
    assert cron_trigger('"0 2 * * *"').get_next_fire_time(None, SATURDAY_NOON) == datetime(
        2026, 11, 22, 2, 0, tzinfo=UTC
    )


@pytest.mark.parametrize("expression", ["0 2 * *", "0 2 * * 8", "0 2 * * 5-1", "0 25 * * *", "0 2 * * funday"])
def test_malformed_schedules_are_errors(expression):
    with pytest.raises(ValueError):
        cron_trigger(expression)


def test_a_bad_schedule_setting_names_the_variable(settings):
    from django.core.exceptions import ImproperlyConfigured

    from background_tasks.jobs import JOBS

    settings.JOB_BACKUP_DATA_CRON = "every sunday"
    with pytest.raises(ImproperlyConfigured, match="JOB_BACKUP_DATA_CRON"):
        JOBS["backup_data"].trigger()
