"""An address whose Unicode lower case is someone else's is not that someone (U+212A)."""

from __future__ import annotations

from postdesk.config import AgentSettings, OrganisationSettings, Settings
from postdesk.store.organisations import configured
from postdesk.threading.trust import agents_by_address

KELVIN_KATE = "\u212aate@acme.test"  # KELVIN SIGN: "\u212a".lower() == "k"


def test_a_kelvin_sign_look_alike_is_not_an_organisation_admin():
    settings = Settings(organisations=(OrganisationSettings(
        "Acme", domains=("Acme.test", "\u00e9cole.fr"), admins=("Kate@Acme.test",)),))
    org = configured(settings)[0]
    assert org.is_admin("kate@acme.test") and org.is_admin("KATE@acme.test")
    assert not org.is_admin(KELVIN_KATE)
    assert org.owns("x@xn--cole-9oa.fr")  # a configured domain in IDNA form, as addresses are


def test_a_kelvin_sign_look_alike_is_not_an_agent():
    agents = agents_by_address(Settings(agents=(AgentSettings("Kate@acme.test"),)))
    assert "kate@acme.test" in agents and KELVIN_KATE not in agents
