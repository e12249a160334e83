"""factory_boy factories for the project's models: users, chats (timestamps can be backdated), tokens, job runs."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import factory
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from background_tasks.models import JobRun
from chat.models import ChatMessage, ChatSession, IdempotencyRecord
from users.models import AccountToken, User
from workspaces.services import workspace_personal_get

DEFAULT_PASSWORD = "s3cure-Passphrase-42"


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_verified = True
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def _save(obj: User, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            obj.save()


class ChatSessionFactory(factory.django.DjangoModelFactory[ChatSession]):
    class Meta:
        model = ChatSession

    user = factory.SubFactory(UserFactory)
    workspace = factory.LazyAttribute(lambda s: workspace_personal_get(user=s.user))
    title = factory.Sequence(lambda n: f"Session {n}")


class ChatMessageFactory(factory.django.DjangoModelFactory[ChatMessage]):
    class Meta:
        model = ChatMessage

    session = factory.SubFactory(ChatSessionFactory)
    sender = ChatMessage.Sender.USER
    content = factory.Sequence(lambda n: f"Question number {n}?")


class BotMessageFactory(ChatMessageFactory):
    sender = ChatMessage.Sender.BOT
    content = factory.Sequence(lambda n: f"Answer number {n} [1].")
    metadata = factory.LazyFunction(
        lambda: {
            "sources": [
                {"document_id": 1, "title": "Doc", "category": "FAQ", "source": "", "score": 0.7, "snippet": ""}
            ],
            "degraded": False,
            "latency_ms": 100,
            "provider": "extractive",
        }
    )


class AccountTokenFactory(factory.django.DjangoModelFactory[AccountToken]):
    class Meta:
        model = AccountToken

    user = factory.SubFactory(UserFactory)
    purpose = AccountToken.Purpose.VERIFY_EMAIL
    token_hash = factory.Sequence(lambda n: hashlib.sha256(f"token-{n}".encode()).hexdigest())
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))


class OutstandingTokenFactory(factory.django.DjangoModelFactory[OutstandingToken]):
    class Meta:
        model = OutstandingToken

    user = factory.SubFactory(UserFactory)
    jti = factory.Sequence(lambda n: f"jti-{n}")
    token = "header.payload.signature"
    created_at = factory.LazyFunction(timezone.now)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=7))


class BlacklistedTokenFactory(factory.django.DjangoModelFactory[BlacklistedToken]):
    class Meta:
        model = BlacklistedToken

    token = factory.SubFactory(OutstandingTokenFactory)


class IdempotencyRecordFactory(factory.django.DjangoModelFactory[IdempotencyRecord]):
    class Meta:
        model = IdempotencyRecord

    user_message = factory.SubFactory(ChatMessageFactory)
    session = factory.LazyAttribute(lambda r: r.user_message.session)
    user = factory.LazyAttribute(lambda r: r.user_message.session.user)
    key = factory.Sequence(lambda n: f"key-{n}")
    request_hash = "0" * 64


class JobRunFactory(factory.django.DjangoModelFactory[JobRun]):
    class Meta:
        model = JobRun

    job_id = "prune_chat_history"
    status = JobRun.Status.SUCCEEDED
    finished_at = factory.LazyFunction(timezone.now)
