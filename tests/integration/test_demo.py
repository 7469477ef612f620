"""``petranode demo`` as the README's first command runs it, shortened to three dawn hours:
ten real processes come up, the households register and get their money, the driver trades
and reports, the meters' first billing period is billed and verified, and everything stops."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from petranode.demo import HOUSEHOLDS, run_demo
from petranode.testnet import Testnet

pytestmark = pytest.mark.integration


def test_a_short_demo_reports_and_stops(short_tmp: Path) -> None:
    out = io.StringIO()
    directory = short_tmp / "demo"
    summary = run_demo(directory, intervals=3, interval_s=6, out=out)
    print(out.getvalue())  # shown by pytest if an assertion below fails
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"demo: \d+ trades cleared, \d+ failed, \d+ bills verified", lines[-1])
    assert summary["failed"] == 0
    assert summary["bills"] >= len(HOUSEHOLDS)  # the first billing period, one per household
    assert sum(1 for line in lines if line.startswith("interval ")) == 3
    assert any(line.startswith("what the DSO saw:") for line in lines)
    net = Testnet(directory)
    assert not any(net.alive(spec.name) for spec in net.nodes())
