"""Domain errors of the conclusions package.

ConclusionError
 └── InvalidFeedCursor   a feed cursor that this service did not hand out
"""

from __future__ import annotations


class ConclusionError(Exception):
    """Base class for conclusion errors."""


class InvalidFeedCursor(ConclusionError):
    """A `cursor` for `GET /v1/conclusions` that does not decode to a feed position."""
