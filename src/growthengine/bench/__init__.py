"""Performance benchmarks (``growth bench ...``): workloads, measurements and the HTTP load generator."""
