"""Layers depend downwards only: config <- core <- adapters <- bot (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "config": {"telegram", "discord", "apscheduler", "adapters", "bot", "core", "fakes"},
    "core": {"telegram", "discord", "apscheduler", "adapters", "bot", "fakes"},
    "adapters": {"bot", "fakes"},
    "bot": {"fakes", "tests"},
    "benchmarks": {"tests"},
}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_respects_layering(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & FORBIDDEN[package])
        for path in files
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import telegram.ext\nfrom discord import Client\nfrom . import x\n")
    assert _imported_roots(sample) == {"telegram", "discord"}
