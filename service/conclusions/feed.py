"""The feed's opaque paging cursor: the last row's (concluded_at, trace_id, revision). Pure.

The time travels as integer microseconds since the epoch, so a cursor resumes exactly where
the page ended whatever the display format of times is.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta

import orjson

from service.conclusions.models import Conclusion
from service.errors import InvalidParameter
from service.times import EPOCH

FeedPosition = tuple[datetime, str, int]
_MICROSECOND = timedelta(microseconds=1)
_NOT_OURS = "not a cursor returned by this feed"


def encode_cursor(last: Conclusion) -> str:
    """An opaque token that resumes the feed right after `last`."""
    micros = (last.concluded_at - EPOCH) // _MICROSECOND
    raw = orjson.dumps([micros, last.trace_id, last.revision])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> FeedPosition:
    """The position a token stands for; `InvalidParameter("cursor")` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        micros, trace_id, revision = orjson.loads(raw)
        valid = all(isinstance(v, int) for v in (micros, revision)) and isinstance(trace_id, str)
        if not valid or isinstance(micros, bool) or isinstance(revision, bool):
            raise ValueError(_NOT_OURS)
        when = EPOCH + micros * _MICROSECOND
    except (binascii.Error, ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
        raise InvalidParameter("cursor", _NOT_OURS) from None
    return when, trace_id, revision
