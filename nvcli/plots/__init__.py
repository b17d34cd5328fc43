"""Every figure nv draws, with matplotlib's object API only (no pyplot, no backend switching)."""
