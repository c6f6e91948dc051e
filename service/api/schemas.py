"""Building blocks of the declared response types (`typing_extensions.TypedDict`s).

Response bodies are declared as TypedDicts next to their handlers: a handler that builds
its body in the API layer annotates it with the type (so mypy checks it), and
`service.api.openapi` describes it from the same type. pydantic needs the
`typing_extensions` TypedDict on Python 3.11.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import WithJsonSchema

# Every time the service writes: RFC 3339 UTC with milliseconds (`service.times.format_time`).
Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
