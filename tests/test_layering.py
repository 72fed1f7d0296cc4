"""Imports only go downward (DESIGN.md): the core imports nothing of the project; adapters, metrics and
submissions never import the model, the runner or the CLI; metrics never import an adapter."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ("harness/types.py", "harness/geometry.py", "harness/trajectory.py", "harness/maps.py", "harness/errors.py",
        "harness/atomic.py",
        "harness/map_query.py", "harness/scoring_scene.py", "harness/npz_store.py", "harness/safe_pickle.py")
UPPER = ("harness.cli", "harness.runner", "harness.model", "harness.agents", "harness.embedded")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _project(mods: set[str]) -> set[str]:
    return {m for m in mods if m.split(".")[0] in {"harness", "adapters", "metrics", "submissions"}}


def test_core_imports_only_core():
    allowed = {"harness." + Path(p).stem for p in CORE} | {"harness"}
    for rel in CORE:
        bad = _project(_imports(ROOT / rel)) - allowed
        assert not bad, f"{rel} imports {bad}"


def test_lower_layers_do_not_import_upper_ones():
    for pkg in ("adapters", "metrics", "submissions"):
        for path in (ROOT / pkg).rglob("*.py"):
            mods = _project(_imports(path))
            bad = {m for m in mods if m.startswith(UPPER)}
            if pkg == "metrics":
                bad |= {m for m in mods if m.startswith(("adapters", "submissions"))}
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_world_knows_no_file_format():
    for path in (ROOT / "harness" / "world").rglob("*.py"):
        bad = {m for m in _project(_imports(path)) if m.startswith(("adapters", "metrics", "submissions") + UPPER)}
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
