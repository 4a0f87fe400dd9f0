"""The HTTP API: app factory, one router per resource, one error handler."""
