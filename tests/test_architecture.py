"""The package layering the code relies on: the API sits on top, nothing below reaches up."""

from __future__ import annotations

import ast
from pathlib import Path

import service

ROOT = Path(service.__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, absolute names (`from service import api` counts too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_only_the_cli_and_the_api_itself_import_the_api() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "api" or relative == Path("cli.py"):
            continue
        reaching_up = {m for m in imported_modules(path) if m.split(".")[:2] == ["service", "api"]}
        if reaching_up:
            offenders.append(f"service/{relative}: {sorted(reaching_up)}")
    assert offenders == []


def test_the_check_sees_imports_of_the_api(tmp_path: Path) -> None:
    """The test above can fail: an import of the API is found where it is written."""
    probe = tmp_path / "probe.py"
    probe.write_text("from service.api.state import context\nimport service.api\n")
    assert {"service.api.state", "service.api"} <= imported_modules(probe)
