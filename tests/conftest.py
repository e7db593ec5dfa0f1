"""Shared fixtures: the digits data set (bundled with scikit-learn) and tiny subsets of it."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from data import Split, load_dataset


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_digits(digits):
    """256 training and 120 test images of digits: enough to see learning in seconds."""
    return dataclasses.replace(digits, train=Split(digits.train.images[:256], digits.train.labels[:256]),
                               test=Split(digits.test.images[:120], digits.test.labels[:120]))


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)
    yield
