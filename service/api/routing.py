"""Routes whose path parameters may hold any character, "/" included, percent-encoded.

An ASGI server percent-decodes `path` before routing, so `/v1/traces/a%2Fb` looks like
`/v1/traces/a/b` and matches no route. `EncodedRoute` matches the undecoded `raw_path`
instead and decodes each parameter itself, segment by segment: an id may contain "/"
(sent as `%2F`), and `/v1/traces/x%2Fdurations` is the trace "x/durations", never the
durations of trace "x". Every other character round-trips the same way (`%25` is "%",
`%20` a space, UTF-8 escapes any Unicode); a `+` stays a plus sign.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.routing import Match, Route
from starlette.types import Scope


class EncodedRoute(Route):
    """A `Route` matched against the raw request path; parameters are decoded as UTF-8."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw is None:
            return super().matches(scope)
        path = raw.decode("latin-1")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        match = self.path_regex.match(path)
        if match is None:
            return Match.NONE, {}
        params: dict[str, Any] = dict(scope.get("path_params", {}))
        for key, value in match.groupdict().items():
            params[key] = self.param_convertors[key].convert(unquote(value, errors="replace"))
        child_scope = {"endpoint": self.endpoint, "path_params": params}
        if self.methods and scope["method"] not in self.methods:
            return Match.PARTIAL, child_scope
        return Match.FULL, child_scope
