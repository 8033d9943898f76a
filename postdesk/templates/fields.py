"""The shapes of template variables: ``Field`` and ``Variable``, and the fields of every object
a template can receive (desk, ticket, person, message, escalation…).

Types are words an admin reads: ``text``, ``integer``, ``boolean``, ``date``, ``date and time``,
``object``, ``list of text``, ``list of objects``, each possibly ``or null``. Codes (a status, a
step) are shown with the label filters of ``filters.py``. No field is named like a ``dict``
method (``items``, ``values``…): Jinja would find the method instead of the value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    """One member of an object variable (or of each item of a list of objects)."""

    name: str
    type: str
    description: str
    fields: tuple[Field, ...] = ()


@dataclass(frozen=True)
class Variable:
    """A top-level name a template of one key may use, with a realistic example value."""

    name: str
    type: str
    description: str
    example: object
    fields: tuple[Field, ...] = ()


F = Field

DESK = (F("name", "text", "Name of the support desk"),
        F("address", "text", "Address customers write to; replies go there"))

PERSON = (F("name", "text", "Display name; empty when the mail carried none"),
          F("address", "text", "E-mail address"))

TICKET = (
    F("id", "integer", "Ticket number"),
    F("ref", "text", "Reference shown to people, e.g. #1042"),
    F("tag", "text", "Tag for subjects, e.g. [#1042]; replies are threaded by it"),
    F("subject", "text", "Subject of the ticket; empty when the first mail had none"),
    F("status", "text", "Code: new, open, pending, resolved or closed; show it with |status_label"),
    F("priority", "text", "Code: low, normal, high or urgent; show it with |priority_label"),
    F("queue", "text or null", "Queue (team) the ticket is in"),
    F("assignee", "text or null", "Name of the agent in charge"),
    F("requester", "object", "Who opened the ticket", PERSON),
    F("created_at", "date and time", "When the ticket was opened"),
    F("updated_at", "date and time", "Last activity on the ticket"),
)

MESSAGE = (
    F("text", "text", "Body as text, without the quoted history and signature"),
    F("from_name", "text", "Display name of the sender; may be empty"),
    F("from_address", "text", "Address of the sender"),
    F("subject", "text", "Subject of the mail as received"),
    F("at", "date and time", "When the mail was received or sent"),
    F("attachments", "list of text", "File names of the attachments kept"),
)

TIMELINE_STEP = (
    F("step", "text", "Code: submitted, evaluating, engineering, verifying or resolved; "
                      "show it with |step_label"),
    F("at", "date or null", "When the escalation reached this step; null if not yet"),
    F("done", "boolean", "The step is finished"),
    F("current", "boolean", "The escalation is at this step now"),
)

ESCALATION_CORE = (
    F("ref", "text", "Escalation reference, e.g. CP-3"),
    F("status", "text", "Code of the current step; show it with |step_label"),
    F("estimated_date", "date or null", "Estimated resolution date; not a promise"),
    F("timeline", "list of objects", "Every step in order, reached or not", TIMELINE_STEP),
)

ESCALATION = ESCALATION_CORE + (
    F("note", "text", "What the agent wrote about this step; may be empty"),
    F("confirm_requested", "boolean", "The customer is asked to confirm the problem is gone "
                                      "(step verifying)"),
)

ANSWER = (
    F("scale", "text", "Survey scale: 1-7 or good-bad"),
    F("score", "integer or null", "Score from 1 to 7; null on the good-bad scale"),
    F("satisfied", "boolean", "Scores from survey.satisfied_from up, or good"),
    F("comment", "text", "The customer's comment; may be empty"),
)

HISTORY_ENTRY = (
    F("ref", "text", "Ticket reference, e.g. #1042"),
    F("subject", "text", "Subject of the ticket"),
    F("status", "text", "Status code; show it with |status_label"),
    F("escalated", "boolean", "An escalation is open or was opened for this ticket"),
    F("created_at", "date and time", "When the ticket was opened"),
    F("updated_at", "date and time", "Last activity"),
    F("assignee", "text or null", "Name of the agent in charge"),
    F("requester", "object", "Who opened the ticket", PERSON),
)

PREVIOUS = HISTORY_ENTRY[:3]

HISTORY_MESSAGE = (
    F("at", "date and time", "When it was written"),
    F("author", "text", "Name (or address) of who wrote it"),
    F("kind", "text", "customer or agent; internal notes are never listed"),
    F("text", "text", "The message, without quoted history"),
)

DETAIL = HISTORY_ENTRY + (
    F("messages", "list of objects", "The public messages, oldest first", HISTORY_MESSAGE),
    F("escalation", "object or null", "The escalation of this ticket, if any", ESCALATION_CORE),
)
