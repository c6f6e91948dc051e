"""The HTTP API: app factory, exception handlers, and one module per resource."""

from service.api.app import app_context, create_app

__all__ = ["app_context", "create_app"]
