"""``python -m postdesk`` runs the ``postdesk`` command."""

from postdesk.cli import main

main()
