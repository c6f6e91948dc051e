"""The feed's opaque paging cursor: the last row's (concluded_at, trace_id, revision). Pure."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson

from service.conclusions.errors import InvalidFeedCursor
from service.conclusions.models import Conclusion

FeedPosition = tuple[datetime, str, int]


def encode_cursor(last: Conclusion) -> str:
    """An opaque token that resumes the feed right after `last`."""
    raw = orjson.dumps([last.concluded_at.isoformat(), last.trace_id, last.revision])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> FeedPosition:
    """The position a token stands for; `InvalidFeedCursor` for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        at, trace_id, revision = orjson.loads(raw)
        when = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidFeedCursor("not a cursor returned by this feed") from None
    if when.tzinfo is None or not isinstance(trace_id, str) or not isinstance(revision, int):
        raise InvalidFeedCursor("not a cursor returned by this feed")
    return when, trace_id, revision
