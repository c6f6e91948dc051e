"""The HTTP API: app factory, auth, errors, and one module per resource."""

from service.api.app import AppContext, create_app

__all__ = ["AppContext", "create_app"]
