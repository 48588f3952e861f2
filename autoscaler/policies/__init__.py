"""Scaling algorithms: the Policy protocol, the registry and the built-ins, one file each."""
