"""spark-submit entry points, one module per job: parse, configure, call pure functions, write."""
