"""Schedulers behind one protocol (``base.Scheduler``); each module registers itself."""
