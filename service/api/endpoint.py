"""How a route is declared, authenticated, parsed and routed — one declaration per operation.

Every operation of the API is an `Endpoint`: method, path, handler, and the types that
describe it. The same declaration drives

* the request path: authenticate first (before any parsing, so a call without a key is a
  401 whatever else is wrong with it), then parse the query string with the `Query` model
  (unknown or malformed parameters are a 400 naming the parameter; a project key naming
  another project in `?project_id=` is a 403), then call the handler with the typed result;
* the router: `build_routes` makes one Starlette route per path, so a wrong method is a 405
  whose `Allow` header lists every method the path has. A path with parameters is matched
  on the raw (undecoded) request path and each parameter is percent-decoded on its own, so
  a parameter may hold any character, "/" included (`/v1/traces/a%2Fb` is the trace
  "a/b"); literal segments of such a path must arrive unescaped;
* the OpenAPI document (`service.api.openapi`): parameters, request body, success bodies
  with their real status codes, and the error statuses the operation can answer.

Adding a route — declare it in its resource module and list it in that module's `routes()`:

    class ThingParams(ProjectParams):                       # query parameters (params.py)
        limit: int = Field(100, ge=1, le=1000, description="Page size.")

    class ThingOut(TypedDict):                              # typing_extensions.TypedDict
        id: str

    def get_thing(request: Request, query: ThingParams) -> Response:
        \"\"\"One thing (the first docstring line is the summary).\"\"\"
        ...

    def routes() -> list[Endpoint]:
        return [endpoint("GET", "/v1/things/{thing_id}", get_thing,
                         query=ThingParams, responses={200: ThingOut})]

and add the module's `routes()` to `service.api.app.api_routes()`. A plain Starlette `Route`
is refused by the document builder (and so by tests/test_openapi.py).

* `query`: a `service.api.params.Query` model — `ProjectParams` for anything scoped to a
  project, `NoParams` for none, `IgnoredParams` only for probes.
* `body=Body(Model)` declares a JSON request body (the handler still reads and validates it
  with that model, since size caps and error codes differ per route); other media types
  are listed in `media_types` (`Body(None, media_types=("application/x-protobuf",))` is
  raw bytes).
* `responses`: every success status with its body type (a `typing_extensions.TypedDict`,
  a pydantic model, or `Text(media_type)`), e.g. `{202: Accepted}`.
* Error statuses are derived: 400 when the query is checked or a body is taken, 401 when
  authenticated, 403 with `ProjectParams`, 404 with path parameters, 413/415 with a body;
  `errors=(409, 503)` adds the others a handler raises.
* `auth=False` only for probes and the document itself.
* `render_error=` for a protocol whose errors have a body of their own (OTLP's
  `google.rpc.Status`): every client error of the operation, the 401 included, goes
  through it instead of the app's JSON handler.

Handlers may be sync (run in a worker thread) or async.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor
from starlette.datastructures import URLPath
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, compile_path, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.params import ProjectParams, Query, parse_query
from service.api.state import authenticate
from service.errors import ClientError

Q = TypeVar("Q", bound=Query)
Handler = Callable[[Request, Q], Awaitable[Response] | Response]
ErrorRenderer = Callable[[Request, ClientError], Response]


@dataclass(frozen=True)
class Body:
    """A request body: the pydantic model that validates it, and the media types taken.

    `model=None` with a non-JSON media type declares raw bytes (e.g. protobuf).
    """

    model: type[BaseModel] | None
    required: bool = True
    media_types: tuple[str, ...] = ("application/json",)
    description: str = ""


@dataclass(frozen=True)
class Text:
    """A success body that is not JSON (e.g. Prometheus text)."""

    media_type: str


@dataclass(frozen=True)
class Negotiated:
    """A success body in the request's encoding: JSON described by `model`, or `binary`."""

    model: Any
    binary: str


@dataclass(frozen=True)
class Endpoint:
    """One operation: what it takes, what it answers, and who may call it."""

    method: str
    path: str
    handler: Handler[Any]
    query: type[Query]
    # status -> the body's type: a TypedDict, a pydantic model, any type pydantic can
    # describe, or `Text(...)`.
    responses: Mapping[int, Any]
    body: Body | None = None
    extra_errors: frozenset[int] = field(default_factory=frozenset)
    auth: bool = True
    # Renders this operation's client errors itself (a protocol with its own error body,
    # such as OTLP's google.rpc.Status); None: the app's JSON error handler does.
    render_error: ErrorRenderer | None = None

    @property
    def summary(self) -> str:
        return self.docstring.splitlines()[0]

    @property
    def docstring(self) -> str:
        doc = inspect.getdoc(self.handler)
        if not doc:
            raise ValueError(f"{self.method} {self.path}: the handler needs a docstring")
        return doc

    @property
    def path_params(self) -> list[str]:
        return list(compile_path(self.path)[2])

    @property
    def error_statuses(self) -> list[int]:
        """Every client-error status the operation can answer, derived from the declaration."""
        statuses = set(self.extra_errors)
        if self.body is not None or self.query.model_config.get("extra") != "ignore":
            statuses.add(400)  # a bad parameter (unknown ones included) or a bad body
        if self.auth:
            statuses.add(401)
        if issubclass(self.query, ProjectParams):
            statuses.add(403)
        if self.path_params:
            statuses.add(404)
        if self.body is not None:
            statuses.update((413, 415))
        return sorted(statuses)

    async def serve(self, request: Request) -> Response:
        """Authenticate, parse the declared parameters, then run the handler."""
        try:
            caller = authenticate(request) if self.auth else None
            query = parse_query(request.query_params, self.query)
            if caller is not None and isinstance(query, ProjectParams):
                caller.read_project(query.project_id)  # 403 for another project
            if inspect.iscoroutinefunction(self.handler):
                response = await self.handler(request, query)
            else:
                response = await run_in_threadpool(self.handler, request, query)
        except ClientError as exc:
            if self.render_error is None:
                raise
            return self.render_error(request, exc)
        if not isinstance(response, Response):
            raise TypeError(f"{self.method} {self.path}: the handler returned {response!r}")
        return response


def endpoint(
    method: str,
    path: str,
    handler: Handler[Q],
    *,
    query: type[Q],
    responses: Mapping[int, Any],
    body: Body | None = None,
    errors: Iterable[int] = (),
    auth: bool = True,
    render_error: ErrorRenderer | None = None,
) -> Endpoint:
    """Declare one operation (see the module docstring)."""
    if not any(200 <= status < 300 for status in responses):
        raise ValueError(f"{method} {path}: declare at least one success response")
    spec = Endpoint(
        method=method.upper(),
        path=path,
        handler=handler,
        query=query,
        responses=dict(responses),
        body=body,
        extra_errors=frozenset(errors),
        auth=auth,
        render_error=render_error,
    )
    _ = spec.summary  # a missing docstring fails here, not when the document is served
    return spec


class ApiRoute(BaseRoute):
    """Every declared operation of one path; a method it lacks is a 405 with `Allow`."""

    def __init__(self, path: str, endpoints: Sequence[Endpoint]) -> None:
        self.path = path
        self.endpoints: dict[str, Endpoint] = {}
        self._apps: dict[str, ASGIApp] = {}
        for spec in endpoints:
            if spec.path != path or spec.method in self.endpoints:
                raise ValueError(f"{spec.method} {spec.path}: declared twice or on another path")
            self.endpoints[spec.method] = spec
            self._apps[spec.method] = request_response(spec.serve)
        if "GET" in self._apps:
            self._apps["HEAD"] = self._apps["GET"]
        self.allow = ", ".join(sorted(self._apps))
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        # A path with parameters is matched on the undecoded path, each parameter decoded
        # on its own: an id may hold "/" (sent as %2F), and `/v1/traces/x%2Fdurations` is
        # the trace "x/durations", never the durations of trace "x".
        raw = _raw_route_path(scope) if self.param_convertors else None
        found = self.path_regex.match(raw or _route_path(scope))
        if not found:
            return Match.NONE, {}
        convertors: dict[str, Convertor[Any]] = self.param_convertors
        params = dict(scope.get("path_params", {}))
        params.update(
            {
                k: convertors[k].convert(unquote(v, errors="replace") if raw else v)
                for k, v in found.groupdict().items()
            }
        )
        child: Scope = {"path_params": params}
        return (Match.FULL if scope["method"] in self._apps else Match.PARTIAL), child

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._apps.get(scope["method"])
        if app is None:
            raise HTTPException(status_code=405, headers={"Allow": self.allow})
        await app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> URLPath:
        raise NoMatchFound(name, path_params)


def _route_path(scope: Scope) -> str:
    """The path below the app's `root_path` (as Starlette's own routes match it)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


def _raw_route_path(scope: Scope) -> str | None:
    """The path below `root_path` as the client sent it (percent-escapes kept), if known."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return None
    path = raw.decode("latin-1")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


def build_routes(endpoints: Iterable[Endpoint]) -> list[ApiRoute]:
    """One route per path, in the order paths were first declared."""
    by_path: dict[str, list[Endpoint]] = {}
    for spec in endpoints:
        by_path.setdefault(spec.path, []).append(spec)
    return [ApiRoute(path, specs) for path, specs in by_path.items()]


__all__ = [
    "ApiRoute",
    "Body",
    "Endpoint",
    "Handler",
    "Negotiated",
    "Text",
    "build_routes",
    "endpoint",
]
