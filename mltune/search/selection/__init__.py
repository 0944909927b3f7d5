"""Choosing what is registered once the trials ran: the best configuration refit on train +
validation (``refit``), the best few averaged (``ensemble``), registration, gate, report and
summary (``finish``)."""
