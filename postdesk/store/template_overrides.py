"""Admin template overrides as the renderer sees them: the newest saved version of each part.

The renderer asks for (key, locale, part) on every notification; the current versions are read
in one query and cached for a few seconds, so a save is live within that time in every process
without a query per render.
"""

from __future__ import annotations

import threading
import time

from postdesk.store import template_versions
from postdesk.store.db import Database


class StoredOverrides:
    def __init__(self, db: Database, ttl_seconds: float = 5.0) -> None:
        self.db = db
        self.ttl = ttl_seconds
        self._cache: dict[tuple[str, str, str], str] = {}
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    def get(self, key: str, locale: str, part: str) -> str | None:
        with self._lock:
            if time.monotonic() - self._loaded > self.ttl:
                self._cache = self._load()
                self._loaded = time.monotonic()
            return self._cache.get((key, locale, part))

    def invalidate(self) -> None:
        with self._lock:
            self._loaded = float("-inf")

    def _load(self) -> dict[tuple[str, str, str], str]:
        with self.db.reader() as session:
            rows = template_versions.current_all(session)
        # An empty source means "reverted to the packaged default".
        return {(r.key, r.locale, r.part): r.source for r in rows if r.source}
