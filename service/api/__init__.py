"""The HTTP API (FastAPI): `service.api.app.create_app(settings)`."""
