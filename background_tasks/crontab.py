"""Crontab strings to APScheduler triggers, with the weekday numbers every crontab user expects.

APScheduler 3 numbers weekdays from Monday = 0 (its ``from_crontab`` warns about this), so
``0 1 * * 0`` would fire on Mondays. We rewrite the day-of-week field into day names with
crontab's meaning (0 and 7 = Sunday) before handing it over. Pure: no Django.
"""

from __future__ import annotations

from apscheduler.triggers.cron import CronTrigger

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day_number(token: str) -> int:
    token = token.strip().lower()
    if token.isdigit():
        number = int(token)
        if not 0 <= number <= 7:
            raise ValueError(f"day of week {token!r} is out of range 0-7")
        return number % 7
    if token[:3] in _DAYS:
        return _DAYS.index(token[:3])
    raise ValueError(f"unknown day of week {token!r}")


def _expand_part(part: str) -> set[int]:
    span, _, step_text = part.partition("/")
    step = int(step_text) if step_text else 1
    if step < 1:
        raise ValueError(f"step {step_text!r} must be positive")
    if span == "*":
        first, last = 0, 6
    elif "-" in span:
        start, _, end = span.partition("-")
        first, last = _day_number(start), _day_number(end)
        if end.strip() == "7":
            last = 7  # "1-7" is Monday to Sunday
    else:
        first = _day_number(span)
        last = 6 if step_text else first  # "1/2": from Monday, every other day, as in cron
    if last < first:
        raise ValueError(f"day-of-week range {span!r} runs backwards")
    return {day % 7 for day in range(first, last + 1, step)}


def day_of_week_field(field: str) -> str:
    """A crontab day-of-week field (numbers or names) as APScheduler day names."""
    if field.strip() == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        days |= _expand_part(part)
    return ",".join(_DAYS[day] for day in sorted(days))


def cron_trigger(expression: str) -> CronTrigger:
    """``"0 1 * * 0"`` → a UTC ``CronTrigger`` firing Sundays at 01:00; ``ValueError`` if malformed."""
    fields = expression.strip().strip("\"'").split()  # tolerate quotes kept by env-file loaders
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (minute hour day month weekday), got {len(fields)}")
    fields[4] = day_of_week_field(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone="UTC")
