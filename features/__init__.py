"""Feature definitions and their Spark implementation (pure DataFrame functions)."""
