"""Who may import whom, read from the source (every import statement, also inside functions).

* ``counter_site`` is the project's glue (settings, URLconfs, gunicorn config,
  the exception handler): no module of an app imports it.
* ``sync_app`` may import ``storage_app``; ``storage_app`` never imports ``sync_app``.
* ``storage_app.core`` and ``sync_app.core`` import nothing from Django or DRF,
  and nothing of the apps outside a ``core`` package.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("django", "rest_framework", "drf_spectacular", "drf_spectacular_sidecar", "whitenoise")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against its ``package``."""
    if package is None:
        package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return found


def sources(package: str) -> list[Path]:
    return sorted((PROJECT / package).rglob("*.py"))


def violations(package: str, allowed: Callable[[str, str], bool]) -> list[str]:
    return [
        f"{module_name(path)} imports {imported}"
        for path in sources(package)
        for imported in sorted(imported_modules(path))
        if not allowed(module_name(path), imported)
    ]


def top(module: str) -> str:
    return module.split(".")[0]


def test_no_app_module_imports_the_glue() -> None:
    for app in ("storage_app", "sync_app"):
        assert violations(app, lambda _importer, imported: top(imported) != "counter_site") == []


def test_storage_never_imports_sync() -> None:
    assert violations("storage_app", lambda _importer, imported: top(imported) != "sync_app") == []


@pytest.mark.parametrize("core", ["storage_app/core", "sync_app/core"])
def test_the_cores_import_no_framework_and_no_app_module_outside_a_core(core: str) -> None:
    def allowed(_importer: str, imported: str) -> bool:
        if top(imported) in FRAMEWORKS:
            return False
        if top(imported) in ("storage_app", "sync_app", "counter_site"):
            return imported.startswith(("storage_app.core", "sync_app.core"))
        return True

    assert violations(core, allowed) == []


def test_the_storage_core_imports_nothing_of_sync() -> None:
    assert violations("storage_app/core", lambda _importer, imported: top(imported) != "sync_app") == []


def test_the_rules_see_imports_inside_functions(tmp_path: Path) -> None:
    """The reader itself: a late import inside a function counts like any other."""
    probe = tmp_path / "probe.py"
    probe.write_text("def late():\n    from django.conf import settings\n    from .store import GCounterStore\n")
    assert imported_modules(probe, package="storage_app.core") == {"django.conf", "storage_app.core.store"}


def test_the_cores_load_without_django() -> None:
    modules = sorted(module_name(path) for core in ("storage_app/core", "sync_app/core") for path in sources(core))
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = [name for name in sys.modules if name.split('.')[0] in {FRAMEWORKS!r}]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT)
