"""The API description, served as OpenAPI JSON and as a readable HTML page."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from api import openapi
from api.decorators import allow_methods, cors
from api.errors import CODES
from api.v1 import openapi as external_openapi
from zenovay import conditional

CACHE_CONTROL = f"public, max-age={openapi.DOC_MAX_AGE}"


@csrf_exempt  # read-only: a POST gets the JSON 405, not Django's HTML CSRF page
@cors
@allow_methods("GET", "HEAD")
async def openapi_json(request: HttpRequest) -> HttpResponse:
    """GET /e/openapi.json: the OpenAPI 3.1 document, cacheable, readable from any origin."""
    body = openapi.document_json()
    etag = '"' + hashlib.blake2b(body, digest_size=10).hexdigest() + '"'
    if conditional.etag_matches(request, etag):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(
            b"" if request.method == "HEAD" else body, content_type="application/json"
        )
        response["Content-Length"] = str(len(body))
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    return response


@require_safe
def api_docs(request: HttpRequest) -> HttpResponse:
    """GET /docs/api: the same document, rendered for people."""
    doc = openapi.document()
    response = render(request, "api/docs.html", docs_context(doc))
    response["Cache-Control"] = CACHE_CONTROL
    return response


@require_safe
def external_api_json(request: HttpRequest) -> HttpResponse:
    """GET /api/v1/openapi.json: the External API's document (no key needed to read it)."""
    response = HttpResponse(external_openapi.document_json(), content_type="application/json")
    response["Cache-Control"] = CACHE_CONTROL
    return response


@require_safe
def external_api_docs(request: HttpRequest) -> HttpResponse:
    """GET /docs/api/v1: the External API's document, rendered for people."""
    context = docs_context(external_openapi.document(), "/api/v1/openapi.json")
    response = render(request, "api/docs.html", context)
    response["Cache-Control"] = CACHE_CONTROL
    return response


# --- From the OpenAPI dict to what the template shows


def docs_context(doc: dict[str, Any], openapi_url: str = "/e/openapi.json") -> dict[str, Any]:
    components = doc["components"]
    endpoints = [
        _endpoint(doc, path, method, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]
    return {
        "title": doc["info"]["title"],
        "version": doc["info"]["version"],
        "summary": doc["info"].get("summary", ""),
        "intro": markdown_lite(doc["info"]["description"]),
        "base_url": doc["servers"][0]["url"],
        "endpoints": endpoints,
        "websockets": [
            {
                "path": socket["path"],
                "url": _ws_base(doc["servers"][0]["url"]) + socket["path"],
                "description": markdown_lite(socket["description"]),
                "fields": schema_fields(doc, components["schemas"][socket["sends"]]),
            }
            for socket in doc.get("x-websockets", [])
        ],
        "errors": [
            {"status": status, "code": code, "meaning": _error_meaning(doc, status)}
            for status, code in CODES.items()
        ],
        "openapi_url": openapi_url,
    }


def _endpoint(doc: dict[str, Any], path: str, method: str, operation: dict[str, Any]) -> dict:
    base_url = doc["servers"][0]["url"]
    parameters = [resolve(doc, parameter) for parameter in operation.get("parameters", [])]
    example_path = path
    for parameter in parameters:
        if parameter["in"] == "path":
            example_path = example_path.replace(f"{{{parameter['name']}}}", parameter["example"])
    responses = []
    ok_example = None
    ok_fields: list[dict[str, str]] = []
    for status, response in operation["responses"].items():
        resolved = resolve(doc, response)
        media = resolved.get("content", {}).get("application/json", {})
        examples = _examples(media)
        if status.startswith("2") and ok_example is None:
            ok_example = examples[0][1] if examples else None
            ok_fields = schema_fields(doc, media["schema"]) if media else []
        responses.append(
            {
                "status": status,
                "description": markdown_lite(resolved["description"]),
                "headers": sorted(resolved.get("headers", {})),
                "example": examples[0][1] if examples and not status.startswith("2") else "",
            }
        )
    request_body = None
    if "requestBody" in operation:
        content = operation["requestBody"]["content"]
        media = content.get("application/json") or next(iter(content.values()))
        request_body = {
            "content_types": list(content),
            "fields": schema_fields(doc, media["schema"]),
            "examples": _examples(media),
        }
    curl = f"curl '{base_url}{example_path}'"
    if operation.get("security"):  # the External API: a key, JSON in
        curl = _curl_with_key(base_url, example_path, method, parameters, request_body)
    elif method == "post" and request_body and request_body["examples"]:
        # The smallest useful body: the required fields and the type of the first example.
        example = json.loads(request_body["examples"][0][1])
        minimal = {k: v for k, v in example.items() if k in ("code", "type", "url")}
        minimal["url"] = minimal["url"].split("?")[0]
        body = json.dumps(minimal, separators=(",", ":"))
        curl = (
            f"curl -X POST '{base_url}{example_path}' \\\n"
            f"  -H 'Content-Type: text/plain' \\\n  --data '{body}'"
        )
    return {
        "anchor": operation.get("operationId", re.sub(r"\W+", "-", path).strip("-")),
        "method": method.upper(),
        "path": path,
        "summary": operation.get("summary", ""),
        "description": markdown_lite(operation.get("description", "")),
        "ttl": operation.get("x-cache-ttl-seconds"),
        "rate_limit": operation.get("x-rate-limit-per-minute"),
        "body_limit": operation.get("x-body-limit-bytes"),
        "parameters": [_parameter(doc, parameter) for parameter in parameters],
        "request_body": request_body,
        "fields": ok_fields,
        "example": ok_example,
        "responses": responses,
        "curl": curl,
    }


def _curl_with_key(
    base_url: str, path: str, method: str, parameters: list[dict], request_body: dict | None
) -> str:
    query = "&".join(f"{p['name']}={p['example']}" for p in parameters if p["in"] == "query")
    url = f"{base_url}{path}" + (f"?{query}" if query else "")
    lines = [f"curl -X {method.upper()} '{url}'", "  -H 'Authorization: Bearer $ZENOVAY_KEY'"]
    if request_body and request_body["examples"]:
        body = json.dumps(json.loads(request_body["examples"][0][1]), separators=(",", ":"))
        lines += ["  -H 'Content-Type: application/json'", f"  --data '{body}'"]
    return " \\\n".join(lines)


def _ws_base(base_url: str) -> str:
    return re.sub(r"^http", "ws", base_url)


def _examples(media: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, pretty JSON) for the media type's `example` or named `examples`."""
    if "example" in media:
        return [("Example", _pretty(media["example"]))]
    return [
        (example.get("summary") or name, _pretty(example["value"]))
        for name, example in media.get("examples", {}).items()
    ]


def _pretty(value: object, level: int = 0) -> str:
    """Indented JSON that keeps small objects and arrays on one line."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or not value or len(flat) + 2 * level <= 64:
        return flat
    pad = "  " * (level + 1)
    if isinstance(value, dict):
        lines = [f"{pad}{json.dumps(k)}: {_pretty(v, level + 1)}" for k, v in value.items()]
        opening, closing = "{", "}"
    else:
        lines = [f"{pad}{_pretty(item, level + 1)}" for item in value]
        opening, closing = "[", "]"
    return opening + "\n" + ",\n".join(lines) + "\n" + "  " * level + closing


def _parameter(doc: dict[str, Any], parameter: dict[str, Any]) -> dict[str, Any]:
    schema = resolve(doc, parameter["schema"])
    return {
        "name": parameter["name"],
        "in": parameter["in"],
        "required": parameter.get("required", False),
        "type": type_label(doc, schema),
        "description": markdown_lite(parameter.get("description", "")),
    }


def _error_meaning(doc: dict[str, Any], status: int) -> SafeString | str:
    for response in doc["components"].get("responses", {}).values():
        example = response["content"]["application/json"]["example"]
        if example["error"] == CODES[status]:
            return markdown_lite(response["description"])
    return ""


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s (`#/components/...`); siblings such as `description` win."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


PATTERN_HINTS = {
    openapi.TIMESTAMP_PATTERN: "YYYY\u2011MM\u2011DDTHH:MM:SSZ",  # non-breaking hyphens
    openapi.TRACKING_CODE_PATTERN: "ZV_ + 11 of A-Z 0-9",
    openapi.WEBSITE_ID_PATTERN: "ws_ + 6 to 16 of a-z 0-9",
    openapi.COUNTRY_CODE_PATTERN: "2 capital letters",
    "^/": "starts with /",
}


def type_label(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    """A short human description of a schema's type and constraints."""
    schema = resolve(doc, schema)
    if "allOf" in schema:
        schema = resolve(doc, schema["allOf"][0])
    kinds = schema.get("type", "any")
    label = " or ".join(kinds) if isinstance(kinds, list) else kinds
    if kinds == "array":
        item = resolve(doc, schema.get("items", {}))
        label = f"array of {item.get('type', 'any')}"
        if "maxItems" in schema:
            label += f" (at most {schema['maxItems']})"
    details = []
    if "const" in schema:
        details.append(json.dumps(schema["const"]))
    if "enum" in schema:
        details.append(" | ".join(str(value) for value in schema["enum"]))
    if "default" in schema:
        details.append(f"default {schema['default']}")
    if "minimum" in schema and "maximum" in schema:
        details.append(f"{schema['minimum']} to {schema['maximum']}")
    elif "minimum" in schema:
        details.append(f">= {schema['minimum']}")
    if "pattern" in schema:
        details.append(PATTERN_HINTS.get(schema["pattern"], schema["pattern"]))
    if "maxLength" in schema:
        details.append(f"at most {schema['maxLength']} chars")
    return f"{label}, {', '.join(details)}" if details else label


def schema_fields(doc: dict[str, Any], schema: dict[str, Any], prefix: str = "") -> list[dict]:
    """Flatten an object schema into rows: dotted name, type, required, description."""
    schema = resolve(doc, schema)
    rows: list[dict] = []
    required = set(schema.get("required", []))
    for name, raw in schema.get("properties", {}).items():
        field = resolve(doc, raw)
        dotted = f"{prefix}{name}"
        rows.append(
            {
                "name": dotted,
                "type": type_label(doc, field),
                "required": name in required,
                "description": markdown_lite(field.get("description", "")),
            }
        )
        if field.get("type") == "object" and "properties" in field:
            rows += schema_fields(doc, field, dotted + ".")
        elif field.get("type") == "array":
            item = resolve(doc, field.get("items", {}))
            if "properties" in item:
                rows += schema_fields(doc, item, dotted + "[].")
    return rows


_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
]


def _inline(text: str) -> str:
    html = str(escape(text))
    for pattern, replacement in _INLINE:
        html = pattern.sub(replacement, html)
    return html


def markdown_lite(text: str) -> SafeString:
    """The little Markdown the descriptions use: paragraphs, `### ` headings, `- ` lists, code.

    Every piece of text is HTML-escaped before the few tags are added.
    """
    html: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    for line in [*text.strip().splitlines(), ""]:
        stripped = line.strip()
        if items and stripped and line.startswith("  "):
            items[-1] += " " + stripped  # a list item's continuation line
            continue
        starts_block = not stripped or stripped.startswith(("### ", "- "))
        if paragraph and starts_block:
            html.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items and not stripped.startswith("- "):
            html.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + "</ul>")
            items.clear()
        if stripped.startswith("### "):
            html.append(f"<h3>{_inline(stripped[4:])}</h3>")
        elif stripped.startswith("- "):
            items.append(stripped[2:])
        elif stripped:
            paragraph.append(stripped)
    return mark_safe("".join(html))  # noqa: S308 - every text piece went through escape()
