"""Networking for Services: the service proxy every node runs, cluster DNS and Ingress."""
