"""JSON out of values the fast encoder may refuse.

orjson is the service's encoder, but it refuses integers beyond 64 bits (the rollup
ledger's Int128 sums reach them) and strings holding lone surrogates (which a JSON body can
carry as `\\ud800`). `dumps` writes those with the standard library instead, exact for any
integer and with every non-ASCII character escaped, so encoding a stored value or an answer
never fails. Where refusing is the point (a webhook item that cannot be sent as is), call
orjson directly.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """`value` as compact JSON bytes, whatever its integers and strings hold."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":")).encode()
