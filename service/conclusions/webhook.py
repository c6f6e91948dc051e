"""The webhook on the wire: body bytes and headers, signed per Standard Webhooks. Pure."""

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


def body(items: Sequence[Conclusion], *, batch_mode: bool) -> bytes:
    """The JSON body: one payload object, or in batch mode an array of them.

    In batch mode each element also carries its `idempotency_key`, since the header can
    only name the batch.
    """
    if not batch_mode:
        assert len(items) == 1
        return orjson.dumps(items[0].payload())
    return orjson.dumps([{**i.payload(), "idempotency_key": i.idempotency_key} for i in items])


def headers(
    items: Sequence[Conclusion], content: bytes, *, signer: Webhook | None, signed_at: datetime
) -> dict[str, str]:
    """`Idempotency-Key`, and the Standard Webhooks trio when there is a signer.

    The `webhook-id` is the idempotency key, so it too is the same on every retry, as the
    Standard Webhooks spec asks. `signed_at` must be the real time of sending: receivers
    reject timestamps more than a few minutes off.
    """
    key = batch_idempotency_key(items)
    out = {"content-type": "application/json", "idempotency-key": key}
    if signer is not None:
        signature = signer.sign(msg_id=key, timestamp=signed_at, data=content.decode())
        out["webhook-id"] = key
        out["webhook-timestamp"] = str(int(signed_at.timestamp()))
        out["webhook-signature"] = signature
    return out
