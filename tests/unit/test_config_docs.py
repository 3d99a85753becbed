"""Every variable the code reads is in one group, and documented where its group says: the
operator's in README's configuration table, the tuning knobs in docs/operations.md's. What
`up` tells its children is passed as arguments, not environment."""
import re
from pathlib import Path

from dti_pulse.config import _ENV, OTHER_VARIABLES, VARIABLE_GROUPS

REPO = Path(__file__).resolve().parents[2]
USER_GROUPS = ("system", "ingest", "ranking", "console")


def documented(path: Path, heading: str) -> set[str]:
    """The DTI_ variables named in the first column of the table under a heading."""
    text = path.read_text(encoding="utf-8")
    section = re.split(r"\n#{1,6} ", text[text.index(heading) + len(heading):], maxsplit=1)[0]
    first_cells = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `DTI_")]
    return set(re.findall(r"DTI_[A-Z0-9_]+", " ".join(first_cells)))


def read_by_the_code() -> set[str]:
    names = set()
    for package in ("dti_pulse", "services"):
        for path in (REPO / package).rglob("*.py"):
            names.update(re.findall(r"""environ(?:\.get\(|\[)\s*["'](DTI_[A-Z0-9_]+)""", path.read_text(encoding="utf-8")))
    return names


def test_every_variable_is_in_one_group():
    grouped = [name for names in VARIABLE_GROUPS.values() for name in names]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == set(_ENV)
    assert read_by_the_code() <= set(_ENV) | set(OTHER_VARIABLES)


def test_readme_documents_exactly_what_an_operator_sets():
    expected = {name for group in USER_GROUPS for name in VARIABLE_GROUPS[group]}
    assert documented(REPO / "README.md", "### Configuration") == expected


def test_operations_documents_every_tuning_knob():
    tuning = set(VARIABLE_GROUPS["tuning"]) | {name for name, group in OTHER_VARIABLES.items() if group == "tuning"}
    operations = REPO / "docs" / "operations.md"
    assert documented(operations, "## Tuning") == tuning


def test_operations_documents_the_alert_settings():
    assert documented(REPO / "docs" / "operations.md", "## Alerts") == set(VARIABLE_GROUPS["alerts"])
