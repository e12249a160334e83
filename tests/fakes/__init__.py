"""Fake provider servers on 127.0.0.1 for tests, fault injection and load tests."""

from tests.fakes.mistral_server import FakeMistral
from tests.fakes.pinecone_server import FakePinecone
from tests.fakes.server import FakeServer, RecordedRequest, Reply, unused_port

__all__ = ["FakeMistral", "FakePinecone", "FakeServer", "RecordedRequest", "Reply", "unused_port"]
