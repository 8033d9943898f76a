"""Words the templates show in the mail's language: month names, size units, and the labels of
the codes that variables carry (ticket status, priority, escalation step).

Variables hold stable codes (``pending``, ``verifying``); the filters in ``filters.py`` turn
them into these labels, so a caller never needs to know the language of the mail. An unknown
code is shown as it is rather than failing.
"""

from __future__ import annotations

from postdesk.lifecycle import Status

MONTHS = {
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}

SIZE_UNITS = {
    "fr": ("octets", "Ko", "Mo", "Go"),
    "en": ("bytes", "KB", "MB", "GB"),
}

STATUS = {
    "fr": {Status.NEW: "nouveau", Status.OPEN: "ouvert", Status.PENDING: "en attente",
           Status.RESOLVED: "résolu", Status.CLOSED: "fermé"},
    "en": {Status.NEW: "new", Status.OPEN: "open", Status.PENDING: "awaiting reply",
           Status.RESOLVED: "resolved", Status.CLOSED: "closed"},
}

PRIORITY = {
    "fr": {"low": "basse", "normal": "normale", "high": "haute", "urgent": "urgente"},
    "en": {"low": "low", "normal": "normal", "high": "high", "urgent": "urgent"},
}

STEP = {
    "fr": {"submitted": "Soumise", "evaluating": "En cours d'évaluation",
           "engineering": "Prise en charge par l'équipe technique",
           "verifying": "Vérification de la résolution", "resolved": "Résolue"},
    "en": {"submitted": "Submitted", "evaluating": "Being evaluated",
           "engineering": "With our engineering team", "verifying": "Verifying the fix",
           "resolved": "Resolved"},
}
