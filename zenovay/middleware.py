"""The public API's short way through Django.

Under ASGI, Django runs each hook of its built-in middleware (sessions, CSRF, auth,
messages, common, security, clickjacking) by handing it to its one sync thread: about
a dozen thread hops a request, all queued on that thread. The `/e/` endpoints use none
of what those middlewares provide (no session, no user, no CSRF: they are public and
exempt), so `ApiFastPath` calls their async views directly, and applies inline the
parts that matter for every response: the host check, the security headers and the
Content-Length. Anything else (other paths, an unknown `/e/` path, a sync view, a CORS
preflight, which the CORS middleware answers) takes the full chain.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import Resolver404, resolve

PREFIX = "/e/"


class ApiFastPath:
    async_capable = True
    sync_capable = False

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)
        # Used for their pure header logic only, never as links of the chain.
        self.security = SecurityMiddleware(get_response)
        self.frames = XFrameOptionsMiddleware(get_response)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(PREFIX) or request.method == "OPTIONS":
            return await self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return await self.get_response(request)
        if not iscoroutinefunction(match.func):
            return await self.get_response(request)
        request.get_host()  # DisallowedHost -> 400, as CommonMiddleware would
        request.resolver_match = match
        response: HttpResponse | None = self.security.process_request(request)  # HTTPS redirect
        if response is None:
            response = await match.func(request, *match.args, **match.kwargs)
        response = self.security.process_response(request, response)
        response = self.frames.process_response(request, response)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response
