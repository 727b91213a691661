"""The HTTP face: FastAPI app, one router per resource, assembled in ``app.create_app``."""
