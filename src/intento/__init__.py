"""intento: intent-driven orchestration."""

__version__ = "0.1.0"
