"""Organisations in one federation on Flower's deployment engine: certificates, SuperLink."""
