"""Keyed pseudonyms for URLs and host names in researchers' views and exports.

HMAC-SHA256 under a key derived from the deployment's SECRET_KEY (or PSEUDONYM_KEY when set):
the same URL gets the same pseudonym in every export of one deployment, so rows stay linkable,
but without the key nobody can test a guessed URL against it.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=1)
def _key() -> bytes:
    configured = getattr(settings, "PSEUDONYM_KEY", "") or settings.SECRET_KEY
    return hmac.new(configured.encode(), b"takedown-monitor pseudonym v1", hashlib.sha256).digest()


def pseudonymise(value: str) -> str:
    """32 hex characters (128 bits) standing for `value`. The one-shot `hmac.digest` is several
    times faster than building an HMAC object per value, which matters in million-row exports."""
    return hmac.digest(_key(), value.encode(), "sha256").hex()[:32]
