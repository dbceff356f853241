"""Common English country names, as people (and the seed) write them."""

from __future__ import annotations

import functools

import pycountry

# pycountry's common_name covers most; these few it gives only in their formal form.
_COMMON = {
    "RU": "Russia",
    "CD": "DR Congo",
    "PS": "Palestine",
    "BN": "Brunei",
    "FM": "Micronesia",
}


@functools.cache
def country_name(code: str) -> str:
    if code in _COMMON:
        return _COMMON[code]
    country = pycountry.countries.get(alpha_2=code)
    if country is None:
        return code
    return getattr(country, "common_name", None) or country.name


def flag(code: str) -> str:
    """The emoji flag: two regional indicator symbols."""
    if len(code) != 2 or not code.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in code.upper())
