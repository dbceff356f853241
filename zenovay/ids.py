"""Public identifiers: tracking codes (ZV_...) and website ids (ws_...)."""

from __future__ import annotations

import re
import secrets
import string

TRACKING_CODE_RE = re.compile(r"ZV_[A-Z0-9]{11}")
WEBSITE_ID_RE = re.compile(r"ws_[a-z0-9]{6,16}")

_CODE_ALPHABET = string.ascii_uppercase + string.digits
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_tracking_code() -> str:
    return "ZV_" + "".join(secrets.choice(_CODE_ALPHABET) for _ in range(11))


def new_website_id() -> str:
    return "ws_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))


def is_tracking_code(value: object) -> bool:
    return isinstance(value, str) and TRACKING_CODE_RE.fullmatch(value) is not None


def is_website_id(value: object) -> bool:
    return isinstance(value, str) and WEBSITE_ID_RE.fullmatch(value) is not None
