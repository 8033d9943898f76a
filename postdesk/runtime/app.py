"""The one place where postdesk's parts are wired together from the settings.

Commands ask the :class:`App` for what they need (database, desk services, intake, worker,
sender); each part is built — and its modules imported — on first use, so ``postdesk ingest``
(run by the MTA once per mail) and ``postdesk tickets list`` never load the SMTP server, the
mail parser or the template engine they do not need.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from postdesk.config import Settings

# ruff: noqa: PLC0415  (imports are deferred on purpose: see the module docstring)


class App:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def db(self):
        from postdesk.store.db import Database

        return Database(self.settings.database.url, echo=self.settings.database.echo,
                        create=False)

    def create_db(self):
        """The database, created if it is a SQLite file that does not exist yet: ``postdesk
        init`` alone calls this; every other command finds no file and says to run it."""
        from postdesk.store.db import Database

        self.__dict__["db"] = Database(self.settings.database.url,
                                       echo=self.settings.database.echo, create=True)
        return self.db

    @cached_property
    def blobs(self):
        from postdesk.store.blobs import BlobStore

        return BlobStore(self.settings.store.blob_dir or None)

    @cached_property
    def tags(self):
        from postdesk.mail.tags import TagFormat

        return TagFormat(self.settings.desk.tag)

    @cached_property
    def renderer(self):
        from postdesk.store.template_overrides import StoredOverrides
        from postdesk.templates.render import Renderer

        return Renderer(overrides=StoredOverrides(self.db), default_locale=self.settings.desk.locale,
                        timezone=self.settings.desk.timezone)

    @cached_property
    def desk(self):
        from postdesk.desk.services import Desk
        from postdesk.notify.notifier import Notifier
        from postdesk.threading.matchers import default_matchers

        notifier = Notifier(self.settings, self.renderer, self.tags)
        return Desk(settings=self.settings, notifier=notifier, tags=self.tags,
                    matchers=default_matchers(self.tags), blobs=self.blobs)

    def intake(self, on_stored=None, priority=None):
        from postdesk.gateway.intake import Intake

        return Intake(self.db, self.blobs, on_stored=on_stored, priority=priority)

    def worker(self, on_queued=None):
        from postdesk.gateway.worker import Worker

        return Worker(self.db, self.desk, on_queued=on_queued)

    def sender(self):
        from postdesk.notify.sender import Sender
        from postdesk.notify.transports import make_transport

        return Sender(self.db, make_transport(self.settings.outbound), self.settings.outbound)
