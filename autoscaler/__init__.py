"""tracardi-autoscaler: autoscaler and self-healing controller for Tracardi on Kubernetes."""

__version__ = "0.1.0"
