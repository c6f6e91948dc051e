"""API keys: who is calling, and which project they may see and write.

With TA_API_KEYS set, every /v1 call needs `Authorization: Bearer <key>`, or
`Authorization: Basic base64(<anything>:<key>)` (the key is the password, so SDKs that speak
Basic auth, like Langfuse's with its secret key, work unchanged). A project key implies its
project: naming another one (in a record or in `?project_id=`) is a 403, while another
project's data is reported as not found, never as forbidden, so a key cannot probe for ids
it may not see. Keys are compared in constant time and never logged. Without keys
(loopback only), the project comes from the record or `?project_id=`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from dataclasses import dataclass

from service.errors import ForbiddenProject, Unauthorized

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "default"
ADMIN = "*"


@dataclass(frozen=True)
class Principal:
    """The caller: bound to one project, or free to name any (admin, or auth off)."""

    project: str | None

    @property
    def is_admin(self) -> bool:
        return self.project is None

    def read_project(self, requested: str | None) -> str:
        """The project a request is scoped to; a key may not name another project (403)."""
        if self.project is None:
            return requested or DEFAULT_PROJECT
        if requested is not None and requested != self.project:
            raise ForbiddenProject(
                f"project_id: this API key may only use project {self.project!r}"
            )
        return self.project

    def write_project(self, record_project: str | None, default: str | None, field: str) -> str:
        """The project a record is written to; a key may not write another project's data."""
        if self.project is None:
            return record_project or default or DEFAULT_PROJECT
        if record_project is not None and record_project != self.project:
            raise ForbiddenProject(
                f"{field}.project_id: this API key may only write project {self.project!r}"
            )
        return self.project


ADMIN_PRINCIPAL = Principal(project=None)


class KeyRing:
    """The configured keys; looks a bearer token up in constant time per key."""

    def __init__(self, keys: dict[str, str]) -> None:
        self._keys = [(key.encode(), project) for key, project in keys.items()]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def principal_for(self, authorization: str | None) -> Principal:
        """The caller named by an `Authorization` header (raises `Unauthorized`)."""
        if not self.enabled:
            return ADMIN_PRINCIPAL
        presented = presented_key(authorization)
        match: str | None = None
        for key, project in self._keys:
            if hmac.compare_digest(key, presented):
                match = project
        if match is None:
            # Never log the presented value: a typo'd key is one character from a real one.
            log.warning("rejected request with an unknown API key")
            raise Unauthorized("unknown API key")
        return Principal(project=None if match == ADMIN else match)


def presented_key(authorization: str | None) -> bytes:
    """The key in `Bearer <key>` or in the password of `Basic base64(user:key)` (raises 401)."""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip().encode()
    if scheme.lower() == "basic" and credentials.strip():
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        _, colon, password = decoded.partition(b":")
        if colon and password:
            return password
        raise Unauthorized("Authorization: Basic must carry <anything>:<key>")
    raise Unauthorized("missing Authorization: Bearer <key> (or Basic <user>:<key>) header")
