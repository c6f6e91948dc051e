"""The webhook on the wire: body bytes and headers, signed per Standard Webhooks. Pure.

Each item is encoded on its own (`item_json`), so in batch mode an item that cannot be
encoded is left out of its batch and fails alone instead of failing the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import orjson
from standardwebhooks import Webhook

from service.conclusions.models import Conclusion


def batch_idempotency_key(items: Sequence[Conclusion]) -> str:
    """One conclusion: its own key. Several: a digest of their keys (each item carries its own)."""
    if len(items) == 1:
        return items[0].idempotency_key
    digest = hashlib.sha256("\n".join(sorted(i.idempotency_key for i in items)).encode())
    return f"batch:{digest.hexdigest()[:32]}"


def item_json(item: Conclusion, *, batch_mode: bool) -> bytes:
    """One conclusion as JSON; in batch mode with its own `idempotency_key`, since the
    header can only name the batch. Raises when the payload cannot be encoded."""
    payload = item.payload()
    if batch_mode:
        payload["idempotency_key"] = item.idempotency_key
    return orjson.dumps(payload)


def body(parts: Sequence[bytes], *, batch_mode: bool) -> bytes:
    """The JSON body from encoded items: the one object, or in batch mode an array."""
    if not batch_mode:
        assert len(parts) == 1
        return parts[0]
    return b"[" + b",".join(parts) + b"]"


def headers(
    items: Sequence[Conclusion], content: bytes, *, signer: Webhook | None, signed_at: datetime
) -> dict[str, str]:
    """`Idempotency-Key`, and the Standard Webhooks trio when there is a signer.

    The `webhook-id` is the idempotency key, so it too is the same on every retry, as the
    Standard Webhooks spec asks; both are ASCII whatever the ids hold (`key_part`).
    `signed_at` must be the real time of sending: receivers reject timestamps more than a
    few minutes off, so each retry is signed anew.
    """
    key = batch_idempotency_key(items)
    out = {"content-type": "application/json", "idempotency-key": key}
    if signer is not None:
        signature = signer.sign(msg_id=key, timestamp=signed_at, data=content.decode())
        out["webhook-id"] = key
        out["webhook-timestamp"] = str(int(signed_at.timestamp()))
        out["webhook-signature"] = signature
    return out
