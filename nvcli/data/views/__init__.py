"""Multi-view data: 3-D solids, their renders from a ring of cameras, and ModelNet40 renders on disk."""
