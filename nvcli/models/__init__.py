"""Networks by name, unit discovery by tracing, unit codes, and the NeuroView models built on them."""
