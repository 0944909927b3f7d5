"""The model registry: versions and aliases (``versions``), and the promotion gate that moves
``champion`` only to a better model (``gate``)."""
