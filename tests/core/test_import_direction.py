"""Imports point inward: dashboard -> widgets, zenovay; api -> zenovay; widgets -> zenovay.

The core (`zenovay`) imports none of the apps: only `zenovay/urls.py` and `zenovay/asgi.py`
compose them. Every import counts, those inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = {"zenovay", "api", "widgets", "dashboard"}
MAY_IMPORT = {
    "zenovay": {"zenovay"},
    "api": {"api", "zenovay"},
    "widgets": {"widgets", "zenovay"},
    "dashboard": {"dashboard", "widgets", "zenovay"},
}
COMPOSERS = {"zenovay/urls.py", "zenovay/asgi.py"}


def imported_apps(path: Path) -> set[str]:
    """The top-level packages of ours that a module imports (absolute imports only)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & APPS
    return found


def modules() -> list[str]:
    paths = [path for app in APPS for path in (ROOT / app).rglob("*.py")]
    return sorted(str(path.relative_to(ROOT)) for path in paths if "migrations" not in path.parts)


@pytest.mark.parametrize("module", modules())
def test_imports_point_inward(module):
    app = module.split("/")[0]
    if module in COMPOSERS:
        return
    assert imported_apps(ROOT / module) <= MAY_IMPORT[app]


def test_it_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from dashboard import views\n    import api.views\n")
    assert imported_apps(module) == {"dashboard", "api"}
