"""Sound as log-mel spectrograms: the transform, the on-disk cache, UrbanSound8K and the built-in tones."""
