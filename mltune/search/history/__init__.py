"""A search's bookkeeping: what it leaves behind and its best trial (``result``), resuming it
from what MLflow holds (``resume``), the rules that stop it early (``stopping``)."""
