"""The search at a glance: the trials read back from MLflow, ranked, drawn and written as a page."""
