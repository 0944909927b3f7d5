"""Everything mltune writes to MLflow: tag names (``tags``), runs (``runs``), the served model
(``model``), background sending (``background``), system metrics (``system``) and the tracking
server as a remote party (``remote``)."""
