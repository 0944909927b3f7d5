"""The checks a served model makes before its network sees the input: one line naming the row,
the column and the value."""

from __future__ import annotations

import numpy as np
import pytest

from mltune.core.errors import DataError
from mltune.tasks.inputs import finite, not_empty, numbers, within


def test_an_empty_request_is_refused():
    with pytest.raises(DataError, match="input: the request holds no rows; send at least one"):
        not_empty(0)
    not_empty(1)


def test_non_finite_values_name_row_and_column():
    values = np.array([[1.0, 2.0], [3.0, np.inf]])
    with pytest.raises(DataError, match=r"input: row 1, column 'b': inf is not a finite number"):
        finite(values, columns=["a", "b"])
    pixels = np.zeros((1, 2, 3))
    pixels[0, 1, 2] = np.nan
    with pytest.raises(DataError, match=r"row 0, pixel \(1, 2\): nan is not a finite"):
        finite(pixels, name="pixel")
    finite(np.array([[np.nan, 1.0]]), columns=["a", "b"], allow_nan=True)  # imputed gaps
    with pytest.raises(DataError, match="row 0, column 'a': -inf"):
        finite(np.array([[-np.inf, np.nan]]), columns=["a", "b"], allow_nan=True)


def test_strings_where_numbers_belong_name_their_row():
    assert numbers([[1, 2], [3, 4]]).dtype == np.float64
    with pytest.raises(DataError, match="input: row 1: pixel 'white' is not a number"):
        numbers([[1, 2], [3, "white"]], name="pixel")
    with pytest.raises(DataError, match="input: the rows of pixels differ in shape"):
        numbers([[1, 2], [3]], name="pixel")


def test_values_far_outside_the_training_range_say_the_range():
    within(np.array([[0.0, 16.0]]), 0, 32, (0, 16), name="pixel")
    with pytest.raises(DataError, match=r"row 0, pixel 1: 255 is outside what this model "
                                        r"was trained on \(pixels from 0 to 16; it takes 0 to 32"):
        within(np.array([[0.0, 255.0]]), 0, 32, (0, 16), name="pixel")
