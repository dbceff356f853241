"""PostgreSQL statements of the write path: bound on the server, in binary, prepared once.

Django's cursors quote every value into the text of a statement (client-side binding) and
never prepare one. For the write path, which runs a dozen statements for every batch of
events, both cost more than the database work itself: the server parses and plans each
statement again (0.2-0.5 ms each), and an array of thousands of values is quoted by the
driver and parsed again by the server. `run` executes on the caller's connection and
transaction (a Django cursor's), with the values bound in binary, and prepares the
statement the first time a connection runs it (settings: `prepare_threshold`), so later
batches only bind and execute. Statements passed here are fixed texts whose shape does
not depend on the batch (arrays, not lists of placeholders), so each is prepared once.
"""

from __future__ import annotations

from typing import Any

import psycopg


def run(cursor: Any, sql: str, params: list[Any], *, returns: bool = True) -> list[tuple]:
    """`sql` with `params` on the connection of Django `cursor`; its rows if `returns`."""
    with psycopg.Cursor(cursor.connection) as bound:
        bound.execute(sql, params, binary=True, prepare=True)
        return bound.fetchall() if returns else []


def columns(rows: list[list[Any]]) -> list[list[Any]]:
    """Rows as one array per column, for `unnest(%s::type[], ...)`."""
    return [list(column) for column in zip(*rows, strict=True)]
