"""The HTTP service (FastAPI): planning, explanations, checks, runs and the audit trail over HTTP.

Input: HTTP requests. Output: JSON bodies (the same pydantic models as the CLI and the Python
API); every bad input is a 4xx with a JSON error naming the problem (docs/api.md).
"""

from intento.service.app import create_app

__all__ = ["create_app"]
