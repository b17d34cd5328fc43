"""Training: the recipe, the engine with exact resume, devices and threads, distributed data parallel."""
