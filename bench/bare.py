"""The ceiling for bench/ingest.py: a bare ASGI app that does what any collect endpoint
must (read the body, parse its JSON, answer 202 with a JSON body) and nothing else, run by
the same uvicorn as `manage.py serve` (httptools):

    uvicorn bench.bare:app --http httptools --no-access-log
"""

from __future__ import annotations

import json

ANSWER = b'{"ok": true}'
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(ANSWER)).encode()),
    (b"access-control-allow-origin", b"*"),
]


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    json.loads(b"".join(chunks) or b"{}")
    await send({"type": "http.response.start", "status": 202, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
