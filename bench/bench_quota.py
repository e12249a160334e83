"""Cost of the daily-quota check for a user with many sessions (issue 13, item 4).

Compares the check before the fix (a bounded count of the day's messages across all of the
user's sessions) with the counter row that replaced it, on a throwaway SQLite database:

    .venv/bin/python bench/bench_quota.py --sessions 72000 --runs 300
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from datetime import time as clock

from _django import setup

from workspaces.services import workspace_personal_get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=72_000)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    setup("quota")

    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from chat.models import ChatMessage, ChatSession
    from chat.services import _quota_claim
    from users.models import User

    user = User.objects.create_user(username="heavy", email="heavy@example.com", password="x")
    personal = workspace_personal_get(user=user)
    sessions = ChatSession.objects.bulk_create(
        [ChatSession(user=user, workspace=personal) for _ in range(args.sessions)], batch_size=5000
    )
    ChatMessage.objects.bulk_create(
        [ChatMessage(session=s, sender="user", content="hi") for s in sessions[-400:]], batch_size=5000
    )
    settings.CHAT_DAILY_QUOTA = 10**9

    def before() -> None:  # chat.services._quota_check before the fix
        now = timezone.now()
        midnight = datetime.combine(now.date(), clock.min, tzinfo=now.tzinfo)
        today = ChatMessage.objects.filter(session__user=user, sender="user", created_at__gte=midnight)
        today[:500].count()

    def after() -> None:
        _quota_claim(user)

    class Rollback(Exception):
        pass

    def timed(check) -> list[float]:
        samples = []
        for _ in range(args.runs):
            try:
                with transaction.atomic():
                    started = time.perf_counter()
                    check()
                    samples.append((time.perf_counter() - started) * 1000)
                    raise Rollback
            except Rollback:
                pass
        return samples

    _quota_claim(user)  # the counter row exists, as after a user's first send
    for name, check in (("before (count of today's messages)", before), ("after (counter row)", after)):
        samples = sorted(timed(check))
        p95 = samples[int(len(samples) * 0.95)]
        print(f"{name}: median {statistics.median(samples):.3f} ms, p95 {p95:.3f} ms")
    print(f"user with {args.sessions} sessions, 400 messages today, {args.runs} checks each")


if __name__ == "__main__":
    main()
