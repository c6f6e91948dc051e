"""Conclusion detection and at-least-once delivery to the analyze endpoint.

`detector.run_detection_pass` finds quiet traces and records their conclusions;
`delivery.run_delivery_pass` POSTs them, signed, with retries, over `transport` (one
deadline per attempt); `store` is the ClickHouse state both share (records, cursor, the
slotted outbox); `retry` and `webhook` hold the pure decisions (backoff and retry window,
classification, payload and headers); `health` remembers how recent passes went (/readyz).
"""

from service.conclusions.delivery import DeliveryReport, run_delivery_pass
from service.conclusions.detector import run_detection_pass
from service.conclusions.models import Conclusion, Status

__all__ = ["Conclusion", "DeliveryReport", "Status", "run_delivery_pass", "run_detection_pass"]
