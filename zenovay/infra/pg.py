"""PostgreSQL statements of the write path: bound on the server, in binary, prepared once.

Django's cursors quote every value into the text of a statement (client-side binding) and
never prepare one. For the write path, which runs a dozen statements for every batch of
events, both cost more than the database work itself: the server parses and plans each
statement again (0.2-0.5 ms each), and an array of thousands of values is quoted by the
driver and parsed again by the server. `run` executes on the caller's connection and
transaction (a Django cursor's), with the values bound in binary, and prepares the
statement the first time a connection runs it (settings: `prepare_threshold`), so later
batches only bind and execute. Statements passed here are fixed texts whose shape does
not depend on the batch, so each is prepared once.

A batch's rows go as one JSON parameter (`rows` in the statement, `as_json` for the value)
rather than one array per column: the driver dumps arrays element by element in Python,
about 4 µs a row of seven columns under the interpreter lock that the requests need too,
where `json.dumps` takes 0.1 µs and the server unpacks the JSON on a core of its own.
Values are what JSON holds (numbers, strings, booleans, null) and datetimes, sent in ISO
form; a bigint is exact (JSON numbers are arbitrary precision in jsonb).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import psycopg


def run(cursor: Any, sql: str, params: list[Any], *, returns: bool = True) -> list[tuple]:
    """`sql` with `params` on the connection of Django `cursor`; its rows if `returns`.

    The driver's errors are raised as Django's (`django.db.DataError`...), as Django's
    own cursors raise them: the group commit tells a batch the database refused by them."""
    with cursor.db.wrap_database_errors, psycopg.Cursor(cursor.connection) as bound:
        bound.execute(sql, params, binary=True, prepare=True)
        return bound.fetchall() if returns else []


def rows(alias: str, **types: str) -> str:
    """A FROM item of the rows in one JSON parameter (a list of lists, `as_json`), named
    `alias`, with these columns in this order: `FROM {rows("g", w="bigint", p="text")}`."""
    values = ", ".join(f"(e.r->>{i})::{kind}" for i, kind in enumerate(types.values()))
    names = ", ".join(types)
    rows = f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) AS e(r)"  # noqa: S608
    return f"({rows}) AS {alias}({names})"


def as_json(table: Sequence[Sequence[Any]]) -> str:
    """Rows as the parameter of `rows`."""
    return json.dumps(table, default=_iso, separators=(",", ":"))


def _iso(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not sent as JSON")
