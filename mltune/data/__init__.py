"""The user's data as a search holds it: reading files (``io``), the loaded splits
(``splits``), and splits too large for memory, read from disk batch by batch (``streaming``)."""
