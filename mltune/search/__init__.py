"""The search, in rooms by job: ``loop`` (the search from end to end) and ``prepare`` (its
set-up); ``packs`` (running packs: the coordinator every lane shares, the one driver, a trial's
life, pack shapes and sizes, lanes); ``selection`` (choosing what is registered: refit,
ensemble, the end of a search); ``history`` (bookkeeping: the result, resuming from MLflow,
stop rules); ``samplers`` and ``schedulers`` (catalogs behind one protocol each)."""
