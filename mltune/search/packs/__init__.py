"""Running packs: the coordinator every lane of a search shares (``coordinator``), the one
driver each lane runs (``driver``), a trial's whole life (``trial``), where a lane trains and
with what (``lane``), the lanes side by side and what a backend is (``lanes``), pack shapes
(``shapes``) and sizes (``sizes``), the folds of cross-validation (``folds``)."""
