"""Shared terms every layer uses: statuses, directions, outcomes, errors, catalogs.

Nothing here imports another part of mltune; everything else may import this.
"""
