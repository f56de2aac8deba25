"""Runnable benchmarks (they print tables; nothing here is a test)."""
