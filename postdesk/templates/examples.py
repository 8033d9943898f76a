"""Example values for the template variables: one realistic support story, told in plain values.

Julie writes to Acme Support because her Airbnb bookings vanished from her calendar; Camille
answers, the problem goes to the engineers as escalation CP-3. These values feed previews,
validation (every template must render with them) and the variable reference of the docs. They
are shared by every caller: treat them as read-only (templates cannot change them anyway).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

DESK = {"name": "Acme Support", "address": "support@acme.example"}
JULIE = {"name": "Julie Moreau", "address": "julie.moreau@exemple.fr"}
MARC = {"name": "Marc Petit", "address": "marc.petit@exemple.fr"}
CAMILLE = {"name": "Camille Martin", "address": "camille.martin@acme.example"}
SUBJECT = "Les réservations Airbnb n'apparaissent plus dans le calendrier"

TICKET = {
    "id": 1042, "ref": "#1042", "tag": "[#1042]", "subject": SUBJECT, "status": "open",
    "priority": "high", "queue": "Calendrier", "assignee": "Camille Martin",
    "requester": JULIE, "created_at": datetime(2025, 3, 3, 9, 12),
    "updated_at": datetime(2025, 3, 5, 8, 47),
}

FIRST_MESSAGE = {
    "text": "Bonjour,\n\nDepuis hier soir, les réservations Airbnb n'apparaissent plus dans le "
            "calendrier de l'annonce « Studio Vieux-Port ». J'ai relancé la synchronisation "
            "depuis Paramètres > Canaux : le message « Échec de la synchronisation » "
            "s'affiche.\n\nJe joins une capture d'écran.\n\nMerci d'avance,\nJulie",
    "from_name": "Julie Moreau", "from_address": JULIE["address"], "subject": SUBJECT,
    "at": datetime(2025, 3, 3, 9, 12), "attachments": ["capture-calendrier.png"],
}

AGENT_MESSAGE = {
    "text": "Bonjour Julie,\n\nMerci pour la capture d'écran. L'autorisation donnée à Acme sur "
            "votre compte Airbnb a expiré le 2 mars, ce qui bloque la synchronisation.\n\n"
            "Pourriez-vous la renouveler depuis Paramètres > Canaux > Airbnb > Reconnecter, "
            "puis nous dire si les réservations réapparaissent ?\n\nBonne journée,",
    "from_name": "Camille Martin", "from_address": CAMILLE["address"],
    "subject": f"[#1042] {SUBJECT}", "at": datetime(2025, 3, 4, 16, 40),
    "attachments": ["reconnecter-airbnb.pdf"],
}

CUSTOMER_REPLY = {
    "text": "Bonjour Camille,\n\nC'est fait : j'ai reconnecté le compte ce matin, mais les "
            "réservations du 14 au 16 mars manquent toujours. Voici l'une d'elles : "
            "HMQ4X2Z8.\n\nJulie",
    "from_name": "Julie Moreau", "from_address": JULIE["address"],
    "subject": f"RE: [#1042] {SUBJECT}", "at": datetime(2025, 3, 5, 8, 47),
    "attachments": ["reservation-HMQ4X2Z8.pdf"],
}

TIMELINE = [
    {"step": "submitted", "at": date(2025, 3, 5), "done": True, "current": False},
    {"step": "evaluating", "at": date(2025, 3, 6), "done": True, "current": False},
    {"step": "engineering", "at": date(2025, 3, 10), "done": True, "current": False},
    {"step": "verifying", "at": date(2025, 3, 17), "done": False, "current": True},
    {"step": "resolved", "at": None, "done": False, "current": False},
]

ESCALATION = {
    "ref": "CP-3", "status": "verifying", "estimated_date": date(2025, 3, 21),
    "note": "Nos ingénieurs ont corrigé le renouvellement de l'autorisation Airbnb et "
            "réimporté les réservations manquantes.",
    "timeline": TIMELINE, "confirm_requested": True,
}

REMINDER = {"number": 1, "total": 2, "asked_on": date(2025, 3, 4), "resolve_on": date(2025, 3, 14)}
REOPEN_UNTIL = date(2025, 3, 28)
AS_OF = datetime(2025, 3, 17, 12, 0)
SURVEY = {"scale": "1-7", "satisfied_from": 6}
GOOD_ANSWER = {"scale": "1-7", "score": 7, "satisfied": True,
               "comment": "Réponse rapide et claire, merci Camille !"}
BAD_ANSWER = {"scale": "1-7", "score": 3, "satisfied": False,
              "comment": "Il a fallu trois échanges avant que l'on regarde ma capture d'écran."}
PREVIOUS = {"ref": "#987", "subject": "Double réservation le 2 février",
            "status": "closed"}

REJECTED = [
    {"filename": "export-reservations.xlsm", "rule": "type", "size": 48_213},
    {"filename": "video-ecran.mov", "rule": "size", "size": 18_874_368},
]
LIMITS = {"max_files": 5, "max_bytes": 512_000,
          "types": ["CSV", "TSV", "XLSX", "DOC", "DOCX", "PDF", "TXT", "JPG", "PNG", "GIF",
                    "MP4", "MOV", "HAR"]}

MOVED = {"from_queue": "default", "by": "Camille Martin"}

# What the command parser answers for these two lines (a test holds them equal).
COMMAND_ERRORS = [
    {"line": 1, "command": "#status waiting", "problem": "invalid_value",
     "allowed": ["open", "pending", "resolved", "closed"]},
    {"line": 2, "command": "#asign me", "problem": "unknown_command",
     "allowed": ["#status", "#assign", "#priority", "#queue", "#note", "#cc", "#merge",
                 "#escalate", "#escalation"]},
]

HISTORY = [
    {"ref": "#1042", "subject": SUBJECT, "status": "pending", "escalated": True,
     "created_at": datetime(2025, 3, 3, 9, 12), "updated_at": datetime(2025, 3, 17, 11, 30),
     "assignee": "Camille Martin", "requester": JULIE},
    {"ref": "#1017", "subject": "Accès au portail des propriétaires", "status": "open",
     "escalated": False, "created_at": datetime(2025, 2, 24, 14, 2),
     "updated_at": datetime(2025, 2, 26, 10, 15), "assignee": None, "requester": MARC},
    {"ref": "#987", "subject": PREVIOUS["subject"], "status": "closed", "escalated": False,
     "created_at": datetime(2025, 2, 2, 18, 40), "updated_at": datetime(2025, 2, 12, 9, 0),
     "assignee": "Samir Haddad", "requester": JULIE},
]

DETAIL = {
    **{name: HISTORY[0][name] for name in ("ref", "subject", "status", "escalated",
                                           "created_at", "updated_at", "assignee", "requester")},
    "messages": [
        {"at": FIRST_MESSAGE["at"], "author": "Julie Moreau", "kind": "customer",
         "text": FIRST_MESSAGE["text"]},
        {"at": AGENT_MESSAGE["at"], "author": "Camille Martin", "kind": "agent",
         "text": AGENT_MESSAGE["text"]},
        {"at": CUSTOMER_REPLY["at"], "author": "Julie Moreau", "kind": "customer",
         "text": CUSTOMER_REPLY["text"]},
    ],
    "escalation": {name: ESCALATION[name] for name in ("ref", "status", "estimated_date",
                                                       "timeline")},
}


def ticket(**changes: Any) -> dict[str, Any]:
    """The example ticket at another point of its story (``status="pending"``…)."""
    return {**TICKET, **changes}


def twisted(value: Any, small: bool) -> Any:
    """The example values told another way, for the branches the story never takes: every
    number, text and list changed (``small``: 0, empty, empty; else another large number, a
    text of 2,000 characters or more, each list four times longer) and every true/false
    flipped. Validation renders with these to find templates that only loop for real tickets."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return 0 if small else value * 7919 + 104_729
    if isinstance(value, str):
        return "" if small else value * (2000 // max(len(value), 1) + 1)
    if isinstance(value, dict):
        return {name: twisted(item, small) for name, item in value.items()}
    if isinstance(value, list):
        return [] if small else [twisted(item, small) for item in value] * 4
    return value
