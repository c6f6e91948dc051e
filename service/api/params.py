"""Query parameters, declared once as a pydantic model per endpoint and parsed from it.

An endpoint's `Query` subclass is the single source of its parameters: `parse_query`
validates a request's query string against it (unknown names, repeats and bad values are a
400 naming the parameter), the handler receives the typed instance, and the OpenAPI
document lists the same fields (type, enum, bounds, default, description).

    class FeedParams(ProjectParams):
        since: QueryTime | None = Field(None, description="Only conclusions after this time.")
        limit: int = Field(100, ge=1, le=1000, description="Page size.")

Conventions: a parameter that is a Python keyword takes an alias (`from_` → `from`); a
list field is a comma-separated value (`?group_by=model,provider`, OpenAPI `style: form,
explode: false`); an empty value (`?since=`) is the same as leaving the parameter out.
"""

from __future__ import annotations

import typing
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
)
from starlette.datastructures import QueryParams

from service.errors import InvalidParameter
from service.ranges import Granularity
from service.times import TimeOutOfRange, parse_time, storable


def _time(raw: object) -> datetime:
    if isinstance(raw, datetime):
        return storable(raw)
    if not isinstance(raw, str):
        raise ValueError("is not an RFC 3339 time")
    try:
        parsed = parse_time(raw)
    except TimeOutOfRange:
        raise
    except ValueError:
        raise ValueError(f"{raw!r} is not an RFC 3339 time") from None
    return storable(parsed)


# An RFC 3339 time (no offset: UTC) the storage can hold (`service.times.storable`).
QueryTime = Annotated[
    datetime,
    PlainValidator(_time),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class Query(BaseModel):
    """Base of every endpoint's parameters: unknown parameters are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class NoParams(Query):
    """An endpoint that takes no query parameters (any given is a 400)."""


class IgnoredParams(Query):
    """Operations endpoints (probes, scrapes): the query string is ignored, not checked."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class ProjectParams(Query):
    """Endpoints scoped to one project: an admin key (or no keys) names it here."""

    project_id: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description=(
            "The project to act on: admin keys and keyless deployments choose it here "
            "(default `default`); a project key may only name its own project (403 otherwise)."
        ),
    )


class RangeParams(ProjectParams):
    """`from`/`to`/`granularity` of the read APIs (checked further by `service.ranges`)."""

    from_: QueryTime | None = Field(
        None,
        alias="from",
        description="Start of the range (floored to its hour); default 24 h before `to`.",
    )
    to: QueryTime | None = Field(
        None, description="End of the range, exclusive (rounded up to an hour); default now."
    )
    granularity: Granularity = Field("hour", description="Bucket size of the answer.")


Q = TypeVar("Q", bound=Query)


def list_fields(model: type[Query]) -> frozenset[str]:
    """Aliases of the fields that take a comma-separated list."""
    return frozenset(
        info.alias or name for name, info in model.model_fields.items() if _is_list(info.annotation)
    )


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation))


def parse_query(params: QueryParams, model: type[Q]) -> Q:
    """The query string as `model`; `InvalidParameter` naming the first bad parameter."""
    lenient = model.model_config.get("extra") == "ignore"
    known = {info.alias or name for name, info in model.model_fields.items()}
    lists = list_fields(model)
    values: dict[str, Any] = {}
    seen: set[str] = set()
    for name, value in params.multi_items():
        if name not in known:
            if lenient:
                continue
            allowed = sorted(known)
            raise InvalidParameter(name, f"unknown parameter (allowed: {allowed})")
        if name in seen:
            raise InvalidParameter(name, "given more than once")
        seen.add(name)
        if value == "":
            continue  # `?since=` means the same as no `since`
        values[name] = [part.strip() for part in value.split(",")] if name in lists else value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = error["loc"]
        message = str(error["msg"]).removeprefix("Value error, ")
        if len(loc) > 1:  # one item of a list parameter
            message = f"{error['input']!r}: {message}"
        raise InvalidParameter(str(loc[0]) if loc else "query", message) from None
