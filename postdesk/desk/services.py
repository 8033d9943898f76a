"""The services every part that changes tickets shares, built once by the CLI from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from postdesk.config import Settings
from postdesk.mail.tags import TagFormat
from postdesk.notify.notifier import Notifier
from postdesk.store.blobs import BlobStore


@dataclass
class Desk:
    """Settings, notifier, tag format, matchers and blob store: what changing a ticket needs."""

    settings: Settings
    notifier: Notifier
    tags: TagFormat
    matchers: tuple
    blobs: BlobStore

    def is_own(self, address: str) -> bool:
        """True for an address the desk receives for (never a participant, never a recipient)."""
        desk = self.settings.desk
        return (address in (desk.address.lower(), desk.history_address.lower())
                or address.rpartition("@")[2] in desk.domains)
