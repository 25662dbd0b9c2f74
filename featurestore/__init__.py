"""Feature definitions, windowed aggregation and the Redis online store (issue 3)."""
