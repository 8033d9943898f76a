"""The desk: every effect of a mail, an agent's command or a sweep on a ticket.

The pipeline (``gateway/steps.py``) and the scheduler (``scheduler/sweeps.py``) call it with
plain values (the session, the :class:`~postdesk.desk.services.Desk` services, an
:class:`~postdesk.desk.arrival.Arrival`) and get values back; it never sees the pipeline's
context. docs/architecture.md, "The desk", lists its modules.
"""
