"""`GET /openapi.json`: the OpenAPI 3.1 document, built from the app's own routes.

Each route contributes its path, methods, path parameters and the first line of its
endpoint's docstring; request bodies come from the pydantic models that validate them, so
the document cannot drift from what the endpoints accept.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import service
from service.api.conclusions import RedriveRequest
from service.durations.definitions import DurationDefinitionIn, DurationDefinitionUpdate
from service.ingest.models import IngestBatch
from service.jobs.requests import BackfillRequest

# (path, method) -> the model that validates its JSON body.
REQUEST_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("/v1/ingest", "POST"): IngestBatch,
    ("/v1/conclusions/redrive", "POST"): RedriveRequest,
    ("/v1/duration-definitions", "POST"): DurationDefinitionIn,
    ("/v1/duration-definitions/{name}", "PUT"): DurationDefinitionUpdate,
    ("/v1/jobs", "POST"): BackfillRequest,
}

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def build_document(routes: list[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document for these routes."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(route, method)
    return {
        "openapi": "3.1.0",
        "info": {"title": "trace-analytics", "version": service.__version__},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route, method: str) -> dict[str, Any]:
    doc = inspect.getdoc(route.endpoint)
    if not doc:
        raise ValueError(f"{method} {route.path}: the endpoint needs a docstring (its summary)")
    operation: dict[str, Any] = {
        "summary": doc.splitlines()[0],
        "operationId": f"{method.lower()}_{route.endpoint.__name__}",
        "responses": {
            "200": {"description": "OK"},
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            },
        },
    }
    if route.path.startswith("/v1/"):
        operation["security"] = [{"bearer": []}]
    params = re.findall(r"{(\w+)(?::\w+)?}", route.path)
    if params:
        operation["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    model = REQUEST_BODIES.get((route.path, method))
    if model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    return operation


def openapi_route(routes: list[BaseRoute]) -> Route:
    """A route serving the document for `routes` (and itself)."""
    document: dict[str, Any] = {}

    def openapi(request: Request) -> Response:
        """This OpenAPI document."""
        if not document:
            document.update(build_document([*routes, route]))
        return JSONResponse(document)

    route = Route("/openapi.json", openapi, methods=["GET"])
    return route
