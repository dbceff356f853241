"""Log records whose arguments a client chooses stay short.

Django logs every 4xx and 5xx with the request's path ("Not Found: /..."); a client may
send a path of many kilobytes, so each such argument is cut to `LIMIT` characters."""

from __future__ import annotations

import logging

LIMIT = 200


class ShortArguments(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_cut(argument) for argument in record.args)
        return True


def _cut(argument: object) -> object:
    if isinstance(argument, str) and len(argument) > LIMIT:
        return f"{argument[:LIMIT]}… ({len(argument) - LIMIT} more characters)"
    return argument
