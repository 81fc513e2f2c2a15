"""A federation on one machine: Flower's simulation engine (Ray) and the in-process engine."""
