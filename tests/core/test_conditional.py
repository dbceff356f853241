"""One reading of If-None-Match for every answer with an ETag (zenovay.conditional)."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from zenovay import conditional

ETAG = '"abc123"'


@pytest.mark.parametrize("header", ['"abc123"', 'W/"abc123"', '"old", "abc123"', '"x" ,W/"abc123"'])
def test_it_matches_the_etag_weakly_and_in_a_list(header):
    request = RequestFactory().get("/", HTTP_IF_NONE_MATCH=header)
    assert conditional.etag_matches(request, ETAG)


@pytest.mark.parametrize("header", [None, "", '"abc12"', "abc123", '"ABC123"'])
def test_it_does_not_match_another_or_a_missing_etag(header):
    extra = {} if header is None else {"HTTP_IF_NONE_MATCH": header}
    assert not conditional.etag_matches(RequestFactory().get("/", **extra), ETAG)
