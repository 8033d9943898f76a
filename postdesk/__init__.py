"""postdesk: an email-first ticketing gateway."""

__version__ = "0.1.0"
