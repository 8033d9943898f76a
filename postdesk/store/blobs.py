"""Content-addressed files for raw mails and attachments when ``[store] blob_dir`` is set.

A blob is written to a temporary file in the same folder, flushed to disk, then renamed to its
sha256 name, so a reader never sees half a file and a full disk fails before anything points at
it; the folder is synced after the rename (and its parent after a new folder), so the name
survives a power cut as well as the bytes. Without a blob folder the bytes stay in the database rows.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"
# A temporary file this old belongs to a process killed while writing it: a put takes
# seconds at most, so a live writer's file is never this old.
STALE_TEMPORARY_SECONDS = 3600.0


class BlobStore:
    def __init__(self, folder: str | os.PathLike[str] | None) -> None:
        self.folder = Path(folder) if folder else None

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store ``data`` durably; returns its path relative to the blob folder."""
        assert self.folder is not None
        digest = digest or hashlib.sha256(data).hexdigest()
        relative = f"{digest[:2]}/{digest}"
        target = self.folder / relative
        if target.exists():
            return relative
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            _sync_folder(target.parent.parent)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TEMPORARY_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            _sync_folder(target.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return relative

    def remove_stale_temporaries(self, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
        """Delete the temporary files of writers that were killed (SIGKILL, power cut) before
        their rename; returns how many. Nothing points at them: a row is written after the
        rename only."""
        if self.folder is None or not self.folder.is_dir():
            return 0
        limit, removed = time.time() - older_than, 0
        for path in self.folder.glob(f"*/{TEMPORARY_PREFIX}*"):
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # another process swept it first
                continue
        return removed

    def get(self, relative: str) -> bytes:
        assert self.folder is not None
        return (self.folder / relative).read_bytes()


def _sync_folder(folder: Path) -> None:
    """Make the names in ``folder`` durable (a rename is only on disk once its folder is)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
