"""Static files storage: hashed, compressed files once ``collectstatic`` has run, plain ones before."""

from __future__ import annotations

import logging

from whitenoise.storage import CompressedManifestStaticFilesStorage  # type: ignore[import-untyped]

logger = logging.getLogger(__name__)
_warned: set[str] = set()


class ManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """WhiteNoise's compressed manifest storage (``collectstatic`` writes hashed, compressed copies,
    served with far-future cache headers), except that a file missing from the manifest gets its
    plain URL instead of an error page. That happens only where ``collectstatic`` has not run (the
    test suite, a checkout run with DEBUG off); WhiteNoise's finders then serve the original file."""

    def stored_name(self, name: str) -> str:
        try:
            return str(super().stored_name(name))
        except ValueError:
            if name not in _warned:  # once per file and process, not on every page
                _warned.add(name)
                logger.warning("No hashed copy of static file %s: run collectstatic (serving the original)", name)
            return name
