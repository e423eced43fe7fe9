"""Networking in every agent: the service proxy (and, to come, cluster DNS and Ingress)."""
