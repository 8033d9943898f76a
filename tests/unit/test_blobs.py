"""The blob store's durability: the bytes are synced before the rename, the name after it.

``os.fsync`` is observed (each synced descriptor resolved to its path), on a real folder.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from postdesk.store.blobs import BlobStore


@pytest.fixture
def synced(monkeypatch):
    paths: list[str] = []
    real = os.fsync

    def fsync(fd):
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return paths


def test_bytes_then_name_then_new_folder_are_synced(tmp_path, synced):
    store = BlobStore(tmp_path)
    relative = store.put(b"Subject: hello\r\n\r\nbody\r\n")
    folder = tmp_path / relative.split("/")[0]
    assert len(synced) == 3
    assert synced[0] == str(tmp_path)  # the new folder's name, in its parent
    assert os.path.basename(synced[1]).startswith(".tmp-")  # the bytes, before the rename
    assert synced[2] == str(folder)  # the name, after it
    assert store.get(relative) == b"Subject: hello\r\n\r\nbody\r\n"
    assert [p.name for p in folder.iterdir()] == [relative.split("/")[1]]


def test_a_second_blob_in_the_same_folder_syncs_only_itself(tmp_path, synced):
    store = BlobStore(tmp_path)
    first = store.put(b"one")
    prefix = first.split("/")[0]
    data = next(d for d in (f"two {n}".encode() for n in range(10_000))
                if hashlib.sha256(d).hexdigest()[:2] == prefix)
    synced.clear()
    store.put(data)
    assert [os.path.basename(p) for p in synced][1:] == [prefix]
    assert os.path.basename(synced[0]).startswith(".tmp-")


def test_the_same_bytes_twice_write_nothing(tmp_path, synced):
    store = BlobStore(tmp_path)
    assert store.put(b"same") == store.put(b"same")
    assert len(synced) == 3


def test_temporaries_of_killed_writers_are_removed_once_old(tmp_path):
    store = BlobStore(tmp_path)
    kept = store.put(b"a finished blob")
    folder = tmp_path / kept.split("/")[0]
    old, fresh = folder / ".tmp-killed", folder / ".tmp-being-written"
    old.write_bytes(b"half a mail")
    fresh.write_bytes(b"half a mail")
    hour_ago = os.stat(old).st_mtime - 3700
    os.utime(old, (hour_ago, hour_ago))
    assert store.remove_stale_temporaries() == 1
    assert not old.exists() and fresh.exists()
    assert store.get(kept) == b"a finished blob"
    assert store.remove_stale_temporaries() == 0
    assert BlobStore(None).remove_stale_temporaries() == 0
    assert BlobStore(tmp_path / "not-made-yet").remove_stale_temporaries() == 0
