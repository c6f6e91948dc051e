"""`GET /openapi.json`: the OpenAPI 3.1 document, generated from the routes' declarations.

Nothing here is written by hand per route: every operation comes from its `Endpoint`
(`service.api.endpoint`) — parameters from its `Query` model, the request body from the
pydantic model the handler validates with, success bodies from the declared response types
with their real status codes, and the error statuses it can answer from what it declares.
pydantic's `$defs` are hoisted into `components/schemas` and every `$ref` points there.
Error codes and their descriptions come from the `service.errors.ClientError` tree.

`python -m service.api` prints the README's endpoint table (a test checks that the README
has exactly this table); `python -m service.api --json` prints the document itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

import service
from service.api.endpoint import ApiRoute, Endpoint, Negotiated, Text, endpoint
from service.api.params import IgnoredParams, Query, list_fields
from service.errors import ClientError

COMPONENT = "#/components/schemas/{model}"
ERROR_REF = {"$ref": COMPONENT.format(model="Error")}

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every 4xx/5xx body: a stable code and a message naming the field at fault.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def build_document(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document for these routes; every route must be a declared `ApiRoute`."""
    specs: list[Endpoint] = []
    for route in routes:
        if not isinstance(route, ApiRoute):
            where = getattr(route, "path", repr(route))
            raise ValueError(f"{where}: undeclared route; declare it with endpoint() instead")
        specs.extend(route.endpoints.values())

    inputs: list[tuple[tuple[Any, ...], Any, TypeAdapter[Any]]] = []
    for spec in specs:
        if spec.body is not None and spec.body.model is not None:
            body_key: tuple[Any, ...] = ("body", spec.method, spec.path)
            inputs.append((body_key, "validation", TypeAdapter(spec.body.model)))
        for status, kind in spec.responses.items():
            if not isinstance(kind, Text):
                response_key: tuple[Any, ...] = ("response", spec.method, spec.path, status)
                model = kind.model if isinstance(kind, Negotiated) else kind
                inputs.append((response_key, "serialization", TypeAdapter(model)))
    top, defs = TypeAdapter.json_schemas(inputs, ref_template=COMPONENT)
    schemas: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    _merge(schemas, defs.get("$defs", {}))
    refs = {key: schema for (key, _mode), schema in top.items()}

    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for spec in specs:
        operation = _operation(spec, refs, schemas)
        if operation["operationId"] in operation_ids:
            raise ValueError(f"{spec.method} {spec.path}: handler name used twice")
        operation_ids.add(operation["operationId"])
        paths.setdefault(openapi_path(spec.path), {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trace-analytics",
            "version": service.__version__,
            "description": (
                "ClickHouse-centered analytics for LLM and agent traces. With `TA_API_KEYS` "
                "set, every /v1 operation needs `Authorization: Bearer <key>`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def openapi_path(path: str) -> str:
    """`/v1/traces/{trace_id:path}` → `/v1/traces/{trace_id}` (no Starlette convertors)."""
    out, rest = "", path
    while "{" in rest:
        head, _, tail = rest.partition("{")
        name, _, rest = tail.partition("}")
        out += head + "{" + name.split(":")[0] + "}"
    return out + rest


def _operation(
    spec: Endpoint, refs: dict[tuple[Any, ...], Any], schemas: dict[str, Any]
) -> dict[str, Any]:
    summary, _, description = spec.docstring.partition("\n")
    operation: dict[str, Any] = {
        "operationId": spec.handler.__name__.removesuffix("_endpoint"),
        "summary": summary,
    }
    if description.strip():
        operation["description"] = description.strip()
    operation["security"] = [{"bearer": []}] if spec.auth else []
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in spec.path_params
    ]
    parameters += _query_parameters(spec.query, schemas)
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        content: dict[str, Any] = {}
        for media_type in spec.body.media_types:
            if media_type == "application/json" and spec.body.model is not None:
                content[media_type] = {"schema": refs[("body", spec.method, spec.path)]}
            else:
                content[media_type] = {"schema": {"type": "string", "format": "binary"}}
        operation["requestBody"] = {"required": spec.body.required, "content": content}
        if spec.body.description:
            operation["requestBody"]["description"] = spec.body.description
    responses: dict[str, Any] = {}
    for status, kind in sorted(spec.responses.items()):
        if isinstance(kind, Text):
            body = {kind.media_type: {"schema": {"type": "string"}}}
        elif isinstance(kind, Negotiated):
            body = {
                "application/json": {"schema": refs[("response", spec.method, spec.path, status)]},
                kind.binary: {"schema": {"type": "string", "format": "binary"}},
            }
        else:
            body = {
                "application/json": {"schema": refs[("response", spec.method, spec.path, status)]}
            }
        responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": body}
    error_content: dict[str, Any] = {"application/json": {"schema": ERROR_REF}}
    if spec.render_error is not None and spec.body is not None:
        # Errors come back in the request's encoding (OTLP: a google.rpc.Status).
        for media_type in spec.body.media_types:
            if media_type != "application/json":
                error_content[media_type] = {"schema": {"type": "string", "format": "binary"}}
    for status in spec.error_statuses:
        responses.setdefault(
            str(status),
            {"description": _error_description(status), "content": error_content},
        )
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _query_parameters(model: type[Query], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    if issubclass(model, IgnoredParams):
        return []
    schema = model.model_json_schema(by_alias=True, ref_template=COMPONENT)
    _merge(schemas, schema.get("$defs", {}))
    required = set(schema.get("required", []))
    lists = list_fields(model)
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = _without_null(prop)
        prop.pop("title", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
        if not parameter["required"]:
            parameter["allowEmptyValue"] = True  # `?since=` is the same as no `since`
        description = prop.pop("description", None)
        if description:
            parameter["description"] = description
        if name in lists:
            parameter.update(style="form", explode=False)
        parameter["schema"] = prop
        out.append(parameter)
    return out


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter's schema without its `null` branch (absent is how it is null)."""
    prop = dict(prop)
    if prop.get("default", ...) is None:
        del prop["default"]
    branches = [b for b in prop.get("anyOf", []) if b != {"type": "null"}]
    if "anyOf" in prop:
        del prop["anyOf"]
        if len(branches) == 1:
            prop = {**branches[0], **prop}
        else:
            prop["anyOf"] = branches
    return prop


def _merge(schemas: dict[str, Any], defs: dict[str, Any]) -> None:
    for name, schema in defs.items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both named {name!r}")


def _error_description(status: int) -> str:
    codes: dict[str, str] = {}
    pending: list[type[ClientError]] = [ClientError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.status == status and cls is not ClientError:
            codes[cls.code] = (inspect.getdoc(cls) or "").splitlines()[0].rstrip(".")
    listed = "; ".join(f"`{code}`: {text}" for code, text in sorted(codes.items()))
    return f"{HTTPStatus(status).phrase}. {listed}" if listed else HTTPStatus(status).phrase


def routes() -> list[Endpoint]:
    """The document's own route."""
    cache: dict[str, Any] = {}

    def openapi(request: Request, query: IgnoredParams) -> Response:
        """This OpenAPI document."""
        if not cache:
            cache.update(build_document(request.app.routes))
        return JSONResponse(cache)

    return [
        endpoint(
            "GET",
            "/openapi.json",
            openapi,
            query=IgnoredParams,
            responses={200: dict[str, Any]},
            auth=False,
        )
    ]


def api_table(document: dict[str, Any]) -> str:
    """The README's endpoint table: one row per operation, from the document."""
    lines = [
        "| method, path | success | query parameters | errors | what |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            statuses = sorted(int(s) for s in operation["responses"])
            success = ", ".join(str(s) for s in statuses if s < 300)
            errors = ", ".join(str(s) for s in statuses if s >= 400)
            names = [
                f"`{p['name']}`" for p in operation.get("parameters", []) if p["in"] == "query"
            ]
            lines.append(
                f"| `{method.upper()} {path}` | {success} | {', '.join(names) or '—'} "
                f"| {errors or '—'} | {operation['summary']} |"
            )
    return "\n".join(lines) + "\n"
