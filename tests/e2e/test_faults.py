"""The fault suite (tests/faults.py) under `make test`: 0 lost, 0 counted twice, every
scenario recovered within 30 s without a human, and nothing left behind by a kill -9 of up.
The table is printed at the end of the run and kept in test-artifacts/faults.md."""
import pytest

from tests.conftest import ARTIFACTS
from tests.faults import run_all, table

pytestmark = pytest.mark.e2e


def test_faults_lose_nothing_count_nothing_twice_and_heal(tmp_path):
    rows, orphans = run_all(tmp_path / "faults", store_away_s=30)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "faults.md").write_text(table(rows, orphans) + "\n")
    failed = [row.scenario for row in rows if not row.passed]
    assert not failed and not orphans, f"{failed}; orphans {orphans}\n{table(rows, orphans)}\n" + \
        (tmp_path / "faults" / "up.log").read_text(errors="replace")[-4000:]
