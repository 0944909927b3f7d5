"""Regenerate ``sales.csv``: two years of made-up daily sales of one shop (seeded).

Weekly and yearly seasonality, a slow trend, noise, and a daily temperature that nudges sales:
enough structure for a forecaster to beat the naive last-value forecast, small enough (~25 KB)
to ship with the examples.  Run: ``python examples/data/make_sales.py``.
"""

from pathlib import Path

import numpy as np
import pandas as pd

rng = np.random.default_rng(7)
days = pd.date_range("2023-01-01", periods=730, freq="D")
t = np.arange(len(days))
season = 2 * np.pi * t / 365.25
temperature = 12 - 9 * np.cos(season) + rng.normal(0, 2.0, len(t))
weekly = np.array([0.85, 0.9, 0.95, 1.0, 1.15, 1.35, 0.8])[days.day_of_week]
sales = (200 + 0.08 * t + 25 * np.sin(season)) * weekly + 1.5 * temperature \
    + rng.normal(0, 8.0, len(t))
frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "sales": sales.round(1),
                      "temperature": temperature.round(1)})
frame.to_csv(Path(__file__).with_name("sales.csv"), index=False)
