"""Sparse linear heads over NeuroView unit codes: the elastic-net regularisation path of a multinomial head."""
