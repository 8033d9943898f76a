"""The registry of notification templates: every key, who receives it, and the variables it may use.

A template of a key may use only the variables declared here (validation refuses any other);
each variable carries a realistic example, so any template can be previewed and checked without
a ticket. Every template has the parts ``PARTS`` and ships in the locales ``LOCALES``; the first
locale is the fallback of last resort.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from postdesk.errors import TemplateError
from postdesk.templates import examples as ex
from postdesk.templates import fields as f
from postdesk.templates.fields import Field, Variable

__all__ = ["Field", "Variable", "TemplateKey", "KEYS", "PARTS", "LOCALES", "template_key",
           "example_values"]

PARTS = ("subject", "text", "html")
LOCALES = ("fr", "en")
Audience = Literal["customer", "agent", "admin"]


@dataclass(frozen=True)
class TemplateKey:
    """One kind of notification: what it is for, who gets it, what it may use."""

    name: str
    description: str
    audience: Audience
    variables: tuple[Variable, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(variable.name for variable in self.variables)


def _desk() -> Variable:
    return Variable("desk", "object", "The support desk sending this mail", ex.DESK, f.DESK)


def _ticket(**changes: Any) -> Variable:
    return Variable("ticket", "object", "The ticket this mail is about", ex.ticket(**changes),
                    f.TICKET)


def _person(name: str, description: str, example: dict[str, str]) -> Variable:
    return Variable(name, "object", description, example, f.PERSON)


def _message(description: str, example: dict[str, Any]) -> Variable:
    return Variable("message", "object", description, example, f.MESSAGE)


def _customer(description: str = "The customer this mail goes to") -> Variable:
    return _person("customer", description, ex.JULIE)


def _agent(description: str = "The agent this mail goes to") -> Variable:
    return _person("agent", description, ex.CAMILLE)


def _reopen_until() -> Variable:
    return Variable("reopen_until", "date", "Last day a reply reopens the ticket; later, a reply "
                    "opens a follow-up ticket", ex.REOPEN_UNTIL)


def _answer(example: dict[str, Any]) -> Variable:
    return Variable("answer", "object", "The customer's answer to the survey", example, f.ANSWER)


def _undeliverable() -> Variable:
    return Variable("undeliverable", "list of text", "Addresses on the ticket the desk no longer "
                    "mails because their mail bounced (``postdesk contacts``); usually empty",
                    ["marc.ancien@client.example"])


def _key(name: str, audience: Audience, description: str, *variables: Variable) -> TemplateKey:
    return TemplateKey(name, description, audience, variables)


_ALL = (
    _key("ticket_created", "customer", "Acknowledges a new ticket: its number, one problem per "
         "ticket, what a useful follow-up contains", _desk(), _ticket(status="new",
         assignee=None), _customer()),
    _key("agent_new_ticket", "agent", "Tells an agent about a new ticket, with the customer's "
         "mail, how to answer and the commands", _desk(), _ticket(status="new"), _agent(),
         _message("The customer's first mail", ex.FIRST_MESSAGE), _undeliverable()),
    _key("agent_ticket_moved", "agent", "Tells an agent that a ticket was moved into one of "
         "their queues (``#queue``), with the customer's last mail, how to answer and the "
         "commands", _desk(), _ticket(), _agent(),
         _customer("The customer who asked"),
         _message("The customer's last mail", ex.CUSTOMER_REPLY),
         Variable("moved", "object", "Who moved the ticket, and from which queue", ex.MOVED, (
             Field("from_queue", "text", "The queue the ticket was in"),
             Field("by", "text", "Name (or address) of the agent who moved it"))),
         _undeliverable()),
    _key("agent_reply", "customer", "Carries an agent's public reply to the customer", _desk(),
         _ticket(status="pending"), _customer(),
         _agent("The agent who wrote the reply"), _message("The agent's reply", ex.AGENT_MESSAGE),
         Variable("signed", "boolean", "The reply already ends with the agent's name: add no "
                  "sign-off of your own", False)),
    _key("customer_replied", "agent", "Tells the agent in charge that the customer replied",
         _desk(), _ticket(), _agent(), _customer("The customer who replied"),
         _message("The customer's reply", ex.CUSTOMER_REPLY), _undeliverable()),
    _key("pending_reminder", "customer", "Reminds a customer that we wait for their answer, "
         "and when the ticket will be resolved without one", _desk(), _ticket(status="pending"),
         _customer(), Variable("reminder", "object", "Which reminder this is", ex.REMINDER, (
             Field("number", "integer", "This reminder's number, from 1"),
             Field("total", "integer", "How many reminders are sent in all"),
             Field("asked_on", "date", "When we last wrote to the customer"),
             Field("resolve_on", "date", "When the ticket is resolved without an answer")))),
    _key("auto_resolved", "customer", "Tells the customer the ticket was resolved for lack of "
         "an answer, and how to reopen it", _desk(), _ticket(status="resolved"), _customer(),
         Variable("waited_days", "integer", "Days we waited for an answer", 10), _reopen_until()),
    _key("ticket_resolved", "customer", "Tells the customer an agent resolved the ticket, and "
         "how to reopen it", _desk(), _ticket(status="resolved"), _customer(), _reopen_until()),
    _key("followup_created", "customer", "Answers a reply to a closed ticket: a new ticket "
         "was opened that refers to the old one", _desk(), _ticket(id=1051, ref="#1051",
         tag="[#1051]", status="new", assignee=None), _customer(),
         Variable("previous", "object", "The closed ticket the customer replied to",
                  ex.PREVIOUS, f.PREVIOUS)),
    _key("ticket_merged", "customer", "Tells the customer their ticket was merged into another "
         "one, where the conversation goes on", _desk(), _ticket(id=1051, ref="#1051",
         tag="[#1051]", status="open"), _customer(),
         Variable("previous", "object", "The ticket that was merged into this one",
                  ex.PREVIOUS, f.PREVIOUS)),
    _key("survey_request", "customer", "Asks how the support went; the customer answers by "
         "replying with a score and a comment", _desk(), _ticket(status="resolved"),
         _customer(), Variable("survey", "object", "The survey settings", ex.SURVEY, (
             Field("scale", "text", "1-7 (a score) or good-bad (Bonne / Mauvaise)"),
             Field("satisfied_from", "integer", "Lowest score that counts as satisfied")))),
    _key("survey_thanks", "customer", "Thanks the customer for their survey answer", _desk(),
         _ticket(status="resolved"), _customer(), _answer(ex.GOOD_ANSWER)),
    _key("survey_review_alert", "admin", "Flags a dissatisfied survey answer for review, with "
         "the comment", _desk(), _ticket(status="resolved"), _customer(),
         _answer(ex.BAD_ANSWER)),
    _key("escalation_update", "customer", "Tells the customer their escalation moved to a new "
         "step; at verifying, asks them to confirm the fix", _desk(),
         _ticket(status="pending"), _customer(), Variable("escalation", "object",
         "The escalation and its timeline", ex.ESCALATION, f.ESCALATION)),
    _key("attachment_rejected", "customer", "Tells the sender which attachments were refused "
         "and why, with the limits", _desk(), _ticket(), _customer(),
         Variable("rejected", "list of objects", "The refused files", ex.REJECTED, (
             Field("filename", "text", "Name of the file"),
             Field("rule", "text", "Why: count (too many files), size (too large) or type"),
             Field("size", "integer", "Size in bytes; show it with |filesize"))),
         Variable("limits", "object", "What attachments must respect", ex.LIMITS, (
             Field("max_files", "integer", "Most files in one message"),
             Field("max_bytes", "integer", "Largest file in bytes; show it with |filesize"),
             Field("types", "list of text", "Accepted file types"))),
         ),
    _key("command_error", "agent", "Tells an agent that commands in their mail were wrong; "
         "nothing was applied and the mail was kept as an internal note", _desk(), _ticket(),
         _agent(), Variable("errors", "list of objects", "One entry per wrong command",
                            ex.COMMAND_ERRORS, (
             Field("line", "integer", "Line of the agent's mail, from 1"),
             Field("command", "text", "The line as the agent wrote it"),
             Field("problem", "text", "Code: unknown_command, missing_value, invalid_value, "
                                      "not_found, invalid_date or not_allowed (the ticket may "
                                      "not change so: a closed ticket is final)"),
             Field("allowed", "list of text", "Accepted commands or values; may be empty")))),
    _key("ticket_history", "customer", "Lists a customer's (or their organisation's) tickets, "
         "optionally with one ticket's messages", _desk(), _customer(),
         Variable("organisation", "text or null", "Organisation name when the list covers "
                  "the whole organisation", "Conciergerie du Vieux-Port"),
         Variable("as_of", "date and time", "When the list was made", ex.AS_OF),
         Variable("tickets", "list of objects", "The tickets, latest activity first",
                  ex.HISTORY, f.HISTORY_ENTRY),
         Variable("detail", "object or null", "One ticket in full, when asked for", ex.DETAIL,
                  f.DETAIL)),
)

KEYS = MappingProxyType({key.name: key for key in _ALL})


def template_key(name: str) -> TemplateKey:
    """The key called ``name``; an unknown name is a ``TemplateError`` that lists the keys."""
    try:
        return KEYS[name]
    except KeyError:
        raise TemplateError(f"unknown template key {name!r} (keys: {', '.join(KEYS)})") from None


def example_values(name: str) -> dict[str, Any]:
    """The example value of every variable of a key, ready to render."""
    return {variable.name: variable.example for variable in template_key(name).variables}
