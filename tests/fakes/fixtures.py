"""pytest fixtures that start the fake provider servers; import them into a conftest.py.

Each fixture is function-scoped: every test gets a freshly started server on its own port,
with an empty request log, an empty fault queue and (for Pinecone) an empty index.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.mistral_server import FakeMistral
from tests.fakes.pinecone_server import FakePinecone


@pytest.fixture
def fake_mistral() -> Iterator[FakeMistral]:
    """A started fake Mistral (and OpenAI-compatible) server; ``.url`` is its base URL."""
    with FakeMistral() as server:
        yield server


@pytest.fixture
def fake_pinecone() -> Iterator[FakePinecone]:
    """A started fake Pinecone index (1024 dimensions, cosine); ``.url`` is its host."""
    with FakePinecone() as server:
        yield server
