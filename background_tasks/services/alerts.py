"""Failure alerts: a failed job run emails the admins, at most once per job per hour."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from redis.exceptions import RedisError

from background_tasks.locks import owner_token, redis_key
from background_tasks.models import JobRun
from users.models import User
from utils.redis import get_redis

logger = logging.getLogger(__name__)

ALERT_INTERVAL_S = 3600


def admin_emails() -> list[str]:
    """``ADMINS``' addresses, else those of the active staff users."""
    emails = [email for _, email in settings.ADMINS if email]
    if emails:
        return emails
    staff = User.objects.filter(is_staff=True, is_active=True).exclude(email="").order_by("id")
    return list(staff.values_list("email", flat=True))


def _first_alert_this_hour(job_id: str) -> bool:
    try:
        key = redis_key("jobs", "alerted", job_id)
        return bool(get_redis().set(key, owner_token(), nx=True, ex=ALERT_INTERVAL_S))
    except RedisError as exc:
        # Without Redis we cannot deduplicate: an extra email beats a silent failure.
        logger.warning("Alert rate limit unavailable (%s); sending anyway", exc)
        return True


def _forget_alert(job_id: str) -> None:
    try:
        get_redis().delete(redis_key("jobs", "alerted", job_id))
    except RedisError as exc:
        logger.warning("Could not reset the alert rate limit of %s (%s)", job_id, exc)


def _body(run: JobRun) -> str:
    when = f"scheduled for {run.scheduled_for:%Y-%m-%d %H:%M:%S} UTC" if run.scheduled_for else "run by hand"
    return (
        f"The maintenance job {run.job_id!r} failed.\n\n"
        f"Run: #{run.pk}, {when}\n"
        f"Started: {run.started_at:%Y-%m-%d %H:%M:%S} UTC\n"
        f"Dry run: {'yes' if run.dry_run else 'no'}\n\n"
        f"Error:\n{run.error}\n\n"
        f"Further failures of this job within the hour are recorded but not emailed.\n"
        f"Run history: {settings.PUBLIC_BASE_URL}/admin/background_tasks/jobrun/?job_id={run.job_id}\n"
    )


def job_failure_alert_send(*, job_run: JobRun) -> bool:
    """Email the admins about a failed run unless this job already alerted within the hour."""
    recipients = admin_emails()
    if not recipients:
        logger.warning("Job %s failed but there is nobody to alert: set ADMINS or add a staff user", job_run.job_id)
        return False
    if not _first_alert_this_hour(job_run.job_id):
        logger.info("Job %s failed again; already alerted within the hour", job_run.job_id)
        return False
    subject = f"[ops] Job {job_run.job_id} failed"
    try:
        send_mail(subject, _body(job_run), settings.SERVER_EMAIL, recipients, fail_silently=False)
    except Exception:  # boundary: any mail error; the failure itself is already recorded and logged
        logger.exception("Could not email the failure alert for job %s", job_run.job_id)
        _forget_alert(job_run.job_id)  # the next failure tries again instead of staying silent for an hour
        return False
    return True
