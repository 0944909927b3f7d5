"""Samplers behind one protocol (``base.Sampler``); each module registers itself."""
