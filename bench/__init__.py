"""Benchmarks. Each module has ``main()`` and records its figures in RESULTS.md."""
