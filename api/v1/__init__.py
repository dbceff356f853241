"""The External API, version 1: authenticated with keys, under /api/v1/."""
