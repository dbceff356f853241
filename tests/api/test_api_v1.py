"""The External API over HTTP: a key's websites, queries, exports, tenancy, errors, and the
answers checked against the OpenAPI document and against the public API's figures."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from django.test import Client
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from api.v1 import openapi
from tests.factories import visit
from zenovay import apikeys
from zenovay.models import Membership, Website
from zenovay.owners import create_owner

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(owner) -> Website:
    website = Website.objects.create(domain="shop.example", name="Shop", owner=owner)
    visit(website, "/", who=1, country="DE")
    visit(website, "/pricing", who=1, country="DE")
    visit(website, "/=HYPERLINK(1)", who=2, country="DE")
    visit(website, "/", who=2, type="event", name="signup", props={"plan": "pro"}, country="DE")
    return website


@pytest.fixture
def blog(teammate) -> Website:
    return Website.objects.create(domain="blog.example", name="Blog", owner=teammate)


def key_of(user) -> dict[str, str]:
    _, secret = apikeys.new_key(user, "test")
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


@pytest.fixture
def olivia(owner) -> dict[str, str]:
    return key_of(owner)


def post(body: object, headers: dict[str, str]):
    return Client().post(
        "/api/v1/query", data=json.dumps(body), content_type="application/json", **headers
    )


def validator(name: str) -> Draft202012Validator:
    doc = openapi.document()
    resource = Resource.from_contents(doc, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:v1", resource)
    schema = {"$ref": f"urn:v1#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


# --- Sites and tenancy


def test_a_key_lists_its_owners_websites_and_those_shared_with_them(owner, shop, blog, teammate):
    Membership.objects.create(website=blog, user=owner, role="viewer")
    response = Client().get("/api/v1/sites", **key_of(owner))
    assert response.status_code == 200
    body = response.json()
    validator("Sites").validate(body)
    assert [(s["domain"], s["role"]) for s in body["sites"]] == [
        ("blog.example", "viewer"),
        ("shop.example", "owner"),
    ]
    theirs = Client().get("/api/v1/sites", **key_of(teammate)).json()
    assert [s["domain"] for s in theirs["sites"]] == ["blog.example"]


def test_another_owners_key_never_reads_the_website(shop, blog, teammate):
    tom = key_of(teammate)
    body = {"site_id": shop.website_id, "metrics": ["visitors"], "date_range": "day"}
    assert post(body, tom).status_code == 404
    export = Client().get(f"/api/v1/export?site_id={shop.website_id}", **tom)
    assert export.status_code == 404 and export.json()["error"] == "not_found"


def test_no_key_or_a_wrong_key_is_401(shop):
    body = {"site_id": shop.website_id, "metrics": ["visitors"], "date_range": "day"}
    assert post(body, {}).status_code == 401
    assert post(body, {"HTTP_AUTHORIZATION": "Bearer zv_not-a-key"}).status_code == 401


# --- Queries


def test_a_query_answers_the_public_apis_figures_and_matches_its_schema(shop, olivia):
    body = {
        "site_id": shop.website_id,
        "metrics": ["visitors", "pageviews", "bounce_rate"],
        "date_range": "day",
        "dimensions": ["time:hour"],
        "compare": "previous_period",
    }
    response = post(body, olivia)
    assert response.status_code == 200, response.content
    answer = response.json()
    validator("QueryResponse").validate(answer)
    validator("QueryRequest").validate(body)
    stats = Client().get(f"/e/stats/{shop.tracking_code}?period=today").json()
    assert answer["totals"][0] == stats["visitors"]["today"] == 2
    assert answer["totals"][2] == stats["bounceRate"]
    assert sum(row["metrics"][1] for row in answer["results"]) == answer["totals"][1] == 3
    assert answer["query"] == body
    assert response["X-RateLimit-Limit"] and response["X-RateLimit-Remaining"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "body"),
        ([1, 2], "body"),
        ({"metrics": ["visitors"], "date_range": "day"}, "site_id"),
        ({"metrics": ["visits"], "date_range": "day", "dimensions": ["page"]}, "metrics"),
        ({"metrics": ["visitors"], "date_range": "fortnight"}, "date_range"),
    ],
)
def test_an_invalid_query_is_400_naming_its_field(shop, olivia, body, field):
    if isinstance(body, dict) and field != "site_id":
        body = {"site_id": shop.website_id, **body}
    raw = body if isinstance(body, str) else json.dumps(body)
    response = Client().post("/api/v1/query", data=raw, content_type="application/json", **olivia)
    assert response.status_code == 400
    assert response.json()["field"] == field and response.json()["error"] == "bad_request"


def test_wrong_methods_and_huge_bodies_get_json_errors(shop, olivia):
    assert Client().get("/api/v1/query", **olivia).status_code == 405
    assert Client().post("/api/v1/sites", **olivia).status_code == 405
    huge = json.dumps({"site_id": shop.website_id, "metrics": ["visitors"], "pad": "x" * 70_000})
    response = Client().post("/api/v1/query", data=huge, content_type="application/json", **olivia)
    assert response.status_code == 413


# --- Export


def test_an_export_is_a_zip_of_csv_files_that_agree_with_the_queries(shop, olivia):
    response = Client().get(f"/api/v1/export?site_id={shop.website_id}&date_range=day", **olivia)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert 'filename="zenovay-shop.example-' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert {"visitors.csv", "pages.csv", "sources.csv", "locations.csv", "devices.csv",
            "custom_events.csv"} <= set(archive.namelist())  # fmt: skip
    pages = list(csv.reader(io.StringIO(archive.read("pages.csv").decode())))
    assert pages[0] == ["page", "visitors", "pageviews"]
    assert ["/", "1", "1"] in pages and ["/pricing", "1", "1"] in pages
    assert ["'/=HYPERLINK(1)", "1", "1"] not in pages  # paths start with /: no formula
    events = list(csv.reader(io.StringIO(archive.read("custom_events.csv").decode())))
    assert events == [["name", "visitors", "events"], ["signup", "1", "1"]]
    days = list(csv.reader(io.StringIO(archive.read("visitors.csv").decode())))
    assert days[0][:3] == ["day", "visitors", "pageviews"] and days[-1][1:3] == ["2", "3"]


def test_an_export_with_a_bad_range_is_400(shop, olivia):
    url = f"/api/v1/export?site_id={shop.website_id}&date_range=2026-02-30,2026-03-01"
    response = Client().get(url, **olivia)
    assert response.status_code == 400 and response.json()["field"] == "date_range"


# --- The document


def test_the_external_api_document_is_valid_and_served_with_its_docs_page(client):
    from openapi_spec_validator import validate

    doc = client.get("/api/v1/openapi.json").json()
    validate(doc)
    assert set(doc["paths"]) == {"/api/v1/sites", "/api/v1/query", "/api/v1/export"}
    page = client.get("/docs/api/v1").content.decode()
    assert "Authorization: Bearer $ZENOVAY_KEY" in page and "import requests" in page


def test_members_keys_follow_their_membership(shop, olivia):
    vera = create_owner("vera", "pw-vera-123")
    Membership.objects.create(website=shop, user=vera, role="viewer")
    key = key_of(vera)
    body = {"site_id": shop.website_id, "metrics": ["pageviews"], "date_range": "day"}
    assert post(body, key).json()["totals"] == [3]
    Membership.objects.filter(user=vera).delete()
    assert post(body, key).status_code == 404
