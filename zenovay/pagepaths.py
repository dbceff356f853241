"""Page paths as a browser sends them in `location.pathname`.

A browser percent-encodes a URL path before any script sees it: spaces, quotes, `<`,
`>`, backticks, braces and every non-ASCII character (as UTF-8), so no real pageview
carries them raw. A forged collect body can, and the public API hands paths to
customers' pages, which may write them with `innerHTML` (the seed's own
`updateDashboard` does). So every path is stored, and returned, in that encoded form;
a path already encoded is left as it is (`%` is kept), so encoding twice changes nothing.
The apostrophe is encoded too, beyond what browsers do, since it closes HTML attributes.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import quote

# What WHATWG's path percent-encode set leaves raw, less the apostrophe.
SAFE = "!$%&()*+,-./:;=@[\\]^_|~"
_CUT_ESCAPE = re.compile(r"%[0-9A-Fa-f]?$")


@functools.lru_cache(maxsize=4096)  # the read path encodes the same few paths again and again
def as_browser_sends(path: str, limit: int = 1024) -> str:
    """The path percent-encoded as a browser sends it, at most `limit` characters.

    `path` must be valid Unicode text without lone surrogates (payload.clean_text)."""
    encoded = quote(path, safe=SAFE)[:limit]
    return _CUT_ESCAPE.sub("", encoded)  # never end in half an escape
