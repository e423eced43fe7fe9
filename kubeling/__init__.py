"""kubeling: Kubernetes for your processes."""

__version__ = "0.1.0"
