"""The layers, held by the build: the kernel (dti_pulse's events, state and its fold, schema,
registry, time, Kafka and ClickHouse plumbing) imports nothing of the services nor of the
composition root; a service imports the kernel and itself only; the dev tools import the
kernel only; the composition root (config, bootstrap, cli and its ask, supervisor) alone wires services."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOT = {"dti_pulse.bootstrap", "dti_pulse.cli", "dti_pulse.config", "dti_pulse.supervisor", "dti_pulse.ask"}
TOOLS = {"dti_pulse.simulator", "dti_pulse.protogen"}


def module_name(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module this file imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.split(".")[0] in ("dti_pulse", "services")}


def layer(module: str) -> str:
    if module in ROOT or any(module.startswith(m + ".") for m in ROOT):
        return "root"
    if module in TOOLS:
        return "tools"
    if module.startswith("dti_pulse"):
        return "kernel"
    return "service:" + module.split(".")[1] if module.count(".") else "services"


def crossings(root: Path = REPO) -> list[str]:
    found = []
    for package in ("dti_pulse", "services"):
        for path in sorted((root / package).rglob("*.py")):
            source = layer(module_name(path, root))
            for target in sorted(imported(path)):
                # "from services.ranking import rules" names a module of services.ranking
                target_layer = layer(target)
                allowed = {"root": True,
                           "kernel": target_layer == "kernel",
                           "tools": target_layer == "kernel"}.get(source)
                if allowed is None:  # a service
                    allowed = target_layer in ("kernel", source, "services")
                if not allowed:
                    found.append(f"{module_name(path, root)} ({source}) imports {target} ({target_layer})")
    return found


def test_no_layer_is_crossed():
    assert crossings() == []


def test_the_check_sees_a_crossing(tmp_path):
    """The check fails where it should: a kernel module importing a service (inside a
    function too), a service importing another, a service importing the root."""
    assert layer("dti_pulse.events") == "kernel" and layer("services.ranking.store") == "service:ranking"
    assert layer("dti_pulse.bootstrap") == "root" and layer("dti_pulse.simulator") == "tools"
    for path, text in {"dti_pulse/events.py": "def f():\n    from services.ranking import store\n",
                       "services/ranking/store.py": "from services.aggregator.state import summarize\n",
                       "services/aggregator/app.py": "from dti_pulse.config import Settings\nimport dti_pulse.events\n",
                       "dti_pulse/bootstrap.py": "from services.ranking.store import ClickHouseMeasures\n"}.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    assert crossings(tmp_path) == [
        "dti_pulse.events (kernel) imports services.ranking (service:ranking)",
        "dti_pulse.events (kernel) imports services.ranking.store (service:ranking)",
        "services.aggregator.app (service:aggregator) imports dti_pulse.config (root)",
        "services.aggregator.app (service:aggregator) imports dti_pulse.config.Settings (root)",
        "services.ranking.store (service:ranking) imports services.aggregator.state (service:aggregator)",
        "services.ranking.store (service:ranking) imports services.aggregator.state.summarize (service:aggregator)",
    ]
