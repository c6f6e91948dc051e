"""The API's exception handlers: every error leaves as `{"error": {"code", "message"}}`.

Code below the API raises the classes of `service.errors`; `create_app` registers these
handlers once, so no endpoint translates errors by hand.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.errors import ClientError, Overloaded

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def handle_client_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    response = error_response(exc.status, exc.code, exc.message)
    if isinstance(exc, Overloaded):
        response.headers["retry-after"] = exc.retry_after_header
    return response


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})  # e.g. a 405's `Allow`
    return response


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", extra={"path": request.url.path})
    return error_response(500, "internal", "internal error; see the service log")
