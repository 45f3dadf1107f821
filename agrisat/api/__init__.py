"""The lending-system API (FastAPI): one router per resource in routers/, dependencies in deps.py."""

from agrisat.api.app import create_app
from agrisat.api.settings import Settings

__all__ = ["Settings", "create_app"]
