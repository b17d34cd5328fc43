"""Network Dissection: exact per-unit thresholds, the IoU tally, and the concept-class map."""
