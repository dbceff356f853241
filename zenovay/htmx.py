"""The request a view sees behind django-htmx's middleware, for type checking.

`HtmxMiddleware` (settings.MIDDLEWARE) sets `request.htmx` on every request; Django's
`HttpRequest` does not declare it, so views that read it take this type instead
(django-htmx's documented way).
"""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
