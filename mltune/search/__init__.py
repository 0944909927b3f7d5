"""The search: the loop from spec to registered model (``loop``), one trial's life (``trial``),
the running search a backend drives (``session``), the samplers behind one protocol
(``samplers``), the schedulers behind another (``schedulers``), stop rules (``stopping``),
resuming from MLflow (``resume``), the result and its best trial (``result``) and the end of a
search (``finish``)."""
