"""The search at a glance: its trials read back from MLflow and ranked (``trials``), each figure's
data then its drawing (``plots``, ``importance``), the page (``html``), the terminal table
(``console``), and the report made and logged on the parent run (``build``)."""
