"""The pure core: evaluate a workload from its signals, dependencies and memory. No I/O here."""
