"""Pages of the manual written from the code, before every build (``mkdocs build`` runs
``docs/gen/hooks.py``, which calls ``generate.main``). One module per job."""
