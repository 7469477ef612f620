"""Fixtures of the RPC tests: a fresh recorder and method table per test."""

import pytest
from rpc_test_methods import Recorder, make_table

from petranode.rpc.protocol import MethodTable


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def table(recorder: Recorder) -> MethodTable:
    return make_table(recorder)
