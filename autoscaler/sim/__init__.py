"""The simulated Tracardi cluster: in-memory state, in-memory adapters and wire-faithful servers."""
