"""The fault suite (tests/faults.py) under `make test`: 0 lost, 0 counted twice, every
scenario recovered within 30 s without a human, and nothing left behind by a kill -9 of up.
The table is printed at the end of the run and kept in test-artifacts/faults.md."""
import pytest

from tests.conftest import ARTIFACTS
from tests.faults import intruders_table, run_all, table

pytestmark = pytest.mark.e2e


def test_faults_lose_nothing_count_nothing_twice_and_heal(tmp_path):
    rows, orphans, intrusions = run_all(tmp_path / "faults", store_away_s=30)
    ARTIFACTS.mkdir(exist_ok=True)
    report = table(rows, orphans) + "\n\n" + intruders_table(intrusions)
    (ARTIFACTS / "faults.md").write_text(report + "\n")
    failed = [row.scenario for row in rows if not row.passed] + [i.attempt for i in intrusions if i.let_in]
    assert not failed and not orphans and len(intrusions) >= 8, f"{failed}; orphans {orphans}\n{report}\n" + \
        (tmp_path / "faults" / "up.log").read_text(errors="replace")[-4000:]
