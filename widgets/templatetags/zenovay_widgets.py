"""Template filters of the widget pages and fragments."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def grouped(value: object) -> str:
    """1204 -> "1,204": the scripts group digits the same way (toLocaleString("en"))."""
    try:
        # A filter takes whatever a template hands it; what int() refuses is caught below.
        return f"{int(value):,}"  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return str(value)
