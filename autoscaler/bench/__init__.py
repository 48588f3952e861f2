"""The benchmark: contenders replayed on traces in the simulator, scored side by side."""
