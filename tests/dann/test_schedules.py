"""Schedules of sec. 5.4.2 against their closed forms."""

import math

import numpy as np
import pytest

from thesis_jax.dann import lambda_schedule, learning_rate_schedule, progress


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_lambda_schedule_closed_form(p):
    expected = 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0
    assert float(lambda_schedule(p)) == pytest.approx(expected, rel=1e-6)


def test_lambda_schedule_shape():
    assert float(lambda_schedule(0.0)) == 0.0
    assert float(lambda_schedule(1.0)) == pytest.approx(0.99991, abs=1e-5)
    values = np.asarray(lambda_schedule(np.linspace(0, 1, 11)))
    assert np.all(np.diff(values) > 0)


def test_learning_rate_schedule_closed_form():
    schedule = learning_rate_schedule(num_steps=1000, mu0=0.01, alpha=10.0, beta=0.75)
    assert float(schedule(0)) == pytest.approx(0.01)
    assert float(schedule(500)) == pytest.approx(0.01 / 6.0**0.75, rel=1e-6)
    assert float(schedule(1000)) == pytest.approx(0.01 / 11.0**0.75, rel=1e-6)
    assert float(schedule(5000)) == pytest.approx(float(schedule(1000)))  # p clipped at 1


def test_no_annealing_when_alpha_is_zero():
    schedule = learning_rate_schedule(num_steps=100, alpha=0.0)
    assert float(schedule(0)) == float(schedule(100)) == pytest.approx(0.01)


def test_progress():
    assert float(progress(25, 100)) == 0.25
    assert float(progress(250, 100)) == 1.0
