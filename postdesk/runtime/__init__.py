"""How postdesk's parts run as processes: their wiring from the settings
(:mod:`~postdesk.runtime.app`), ``serve``'s edge process and its supervised processing child
(:mod:`~postdesk.runtime.serve`, :mod:`~postdesk.runtime.processing`), the threads of the worker,
sender and scheduler (:mod:`~postdesk.runtime.parts`), the ``[metrics] listen`` server
(:mod:`~postdesk.runtime.metrics_http`) and the log set-up (:mod:`~postdesk.runtime.logs`).
The ``postdesk`` command (:mod:`postdesk.cli`) calls these; they never import it.
"""


class CannotListen(Exception):
    """The SMTP/LMTP (or metrics) address cannot be taken (in use, not ours, no permission)."""

    def __init__(self, message: str, section: str = "smtp") -> None:
        super().__init__(message)
        self.section = section
