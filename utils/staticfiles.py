"""Static files storage: hashed, compressed files once ``collectstatic`` has run, plain ones before."""

from __future__ import annotations

import logging

from whitenoise.storage import CompressedManifestStaticFilesStorage  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)
_warned = False


class ManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's compressed manifest storage (``collectstatic`` writes hashed, compressed copies,
    served with far-future cache headers). Where ``collectstatic`` has not run (the test suite, a
    checkout started with DEBUG off) there is no manifest: every file gets its plain URL, served by
    WhiteNoise's finders, and the process says so once.

    With a manifest, a name missing from it is refused as Django's storage refuses it (ValueError):
    WhiteNoise asks for names that are not files (``font-awesome-4.0.3.css`` without what looks like
    a hash) and expects exactly that answer, so no warning is logged for them.
    """

    def stored_name(self, name: str) -> str:
        try:
            return str(super().stored_name(name))
        except ValueError:
            if self.hashed_files:  # collectstatic has run: the name is not one of its files
                raise
            _warn_once()
            return name


def _warn_once() -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning("No static files manifest in STATIC_ROOT: serving the original files (run collectstatic)")
