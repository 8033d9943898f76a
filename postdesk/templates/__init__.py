"""Notification templates: the declared variables of every key, the packaged defaults per locale,
the sandboxed Jinja2 environment, validation of admin versions, preview and rendering.

Templates render plain values only (dicts, lists, text, numbers, dates) and never open the
store: admin versions come in through an ``OverrideSource``. See docs/templates.md.
"""

from postdesk.templates.keys import (KEYS, LOCALES, PARTS, Field, TemplateKey, Variable,
                                     example_values, template_key)
from postdesk.templates.render import OverrideSource, Rendered, Renderer, packaged_source
from postdesk.templates.validate import InvalidTemplate, Problem, validate

__all__ = [
    "KEYS", "LOCALES", "PARTS", "Field", "TemplateKey", "Variable", "example_values",
    "template_key", "OverrideSource", "Rendered", "Renderer", "packaged_source",
    "InvalidTemplate", "Problem", "validate",
]
