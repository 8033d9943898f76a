"""Record a customer's answer to the satisfaction survey of a ticket, in the caller's transaction.

The pipeline calls :func:`survey_reply` for a requester's reply to a resolved or closed ticket
(``postdesk.mail.answers`` reads the reply); one that answers the survey is kept on the ticket and
never reopens it nor opens a follow-up.
Answers count for ``[survey] answer_within`` after the survey was sent; the last one counts and
``answers`` says how many came. Each answer is an event and is thanked (``survey_thanks``); an
unsatisfied one (below ``[survey] satisfied_from``, or "Mauvaise") is also an event
``survey_low_score`` and goes with its comment to ``[survey] review_address``
(``survey_review_alert``) so someone looks at it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from postdesk import lifecycle
from postdesk.desk.arrival import Arrival, Outcome
from postdesk.desk.messages import add_message
from postdesk.desk.services import Desk
from postdesk.lifecycle import Status
from postdesk.mail.answers import SurveyAnswer, parse_survey_answer
from postdesk.store import sweep_queries as store
from postdesk.store import tickets
from postdesk.store.clock import as_utc
from postdesk.store.models import Survey, Ticket

AUTOMATIC = "auto-generated"


def survey_reply(session: Session, desk: Desk, arrival: Arrival) -> Outcome | None:
    """Record the mail as a survey answer when the requester of the resolved (or closed)
    ticket it names answers that ticket's survey; None when it does not (it goes on as a reply)."""
    ticket = tickets.row(session, arrival.decision.named)  # read by the threading
    if ticket.status not in (Status.RESOLVED, Status.CLOSED) or \
            arrival.mail.from_addr != ticket.requester:
        return None
    survey = survey_for(session, ticket.id)
    if survey is None:
        return None
    text = arrival.text
    answer = parse_for(survey, text, desk)
    if answer is None:
        return None
    message, rejected = add_message(
        session, desk, arrival, ticket.id, kind="customer", from_addr=arrival.mail.from_addr,
        from_name=arrival.mail.from_name[:300], text=text, judged=True,
        evidence=f"{arrival.decision.evidence}; answers the satisfaction survey")
    line = record_answer(session, desk, ticket, answer, arrival.now, message.id)
    return Outcome(None, ticket, message, rejected, [line])


def survey_for(session: Session, ticket_id: int) -> Survey | None:
    """The survey sent for the ticket, or None."""
    return store.survey_of(session, ticket_id)


def parse_for(survey: Survey, text: str, desk: Desk) -> SurveyAnswer | None:
    """Read ``text`` (the reply above the quote) as an answer on the survey's own scale."""
    return parse_survey_answer(text, survey.scale, desk.settings.survey.satisfied_from)


def record_answer(session: Session, desk: Desk, ticket: Ticket, answer: SurveyAnswer,
                  now: datetime, message_id: int | None) -> str:
    """Store the answer on the ticket's survey, thank the customer, flag a low score."""
    survey = survey_for(session, ticket.id)
    if survey is None:
        return f"no survey was sent for #{ticket.id}; answer not recorded"
    within = desk.settings.survey.answer_within
    if now - as_utc(survey.sent_at) > timedelta(seconds=within):
        days = lifecycle.in_days(within)
        tickets.add_event(session, ticket.id, "survey_answer_late", now, actor=ticket.requester,
                          days=days, message=message_id)
        return f"survey answer on #{ticket.id} came after {days:g} days; not counted"
    _store(survey, answer, now)
    tickets.add_event(session, ticket.id, "survey_answered", now, actor=ticket.requester,
                      scale=answer.scale, score=answer.score, satisfied=answer.satisfied,
                      answers=survey.answers, message=message_id)
    _tell(session, desk, ticket, now, "survey_thanks", [ticket.requester], answer)
    outcome = f"survey answer on #{ticket.id}: {describe(answer)}"
    if not answer.satisfied:
        outcome += "; " + _flag(session, desk, ticket, answer, now)
    return outcome


def _store(survey: Survey, answer: SurveyAnswer, now: datetime) -> None:
    survey.score, survey.satisfied = answer.score, answer.satisfied
    survey.comment = answer.comment or None
    survey.answered_at = now
    survey.answers += 1


def _flag(session: Session, desk: Desk, ticket: Ticket, answer: SurveyAnswer,
          now: datetime) -> str:
    review = desk.settings.survey.review_address
    tickets.add_event(session, ticket.id, "survey_low_score", now, score=answer.score,
                      comment=answer.comment, review_address=review or None)
    if not review:
        return "flagged for review (no [survey] review_address: event only)"
    row = _tell(session, desk, ticket, now, "survey_review_alert", [review], answer,
                locale=desk.settings.desk.locale, internal=True)
    return "flagged for review" + ("" if row else " (alert suppressed)")


def _tell(session: Session, desk: Desk, ticket: Ticket, now: datetime, key: str,
          to: list[str], answer: SurveyAnswer, locale: str | None = None,
          internal: bool = False):
    variables = {"answer": answer.as_variable()}
    return desk.notifier.notify(session, now, ticket, key, to, variables=variables,
                                automatic=AUTOMATIC, locale=locale, internal=internal)


def describe(answer: SurveyAnswer) -> str:
    """``6/7, satisfied`` or ``good, satisfied``: the answer in a few words."""
    if answer.score is not None:
        value = f"{answer.score}/7"
    else:
        value = "good" if answer.satisfied else "bad"
    return f"{value}, {'satisfied' if answer.satisfied else 'not satisfied'}"
