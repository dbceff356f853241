"""Kept only for api/v1/auth.py, which imports `zenovay.store`: the store is
`zenovay.infra.store`, and this name is the very same module object."""

from __future__ import annotations

import sys

from zenovay.infra import store

sys.modules[__name__] = store
