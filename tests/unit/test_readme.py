"""The README documents every setting and names the two set-up commands CI relies on."""

from __future__ import annotations

from pathlib import Path

from stockgate.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [n for n in Settings.model_fields if f"`STOCKGATE_{n.upper()}`" not in readme]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make up" in readme
    assert "make test" in ci


def _tree_in_readme() -> set[str]:
    """The paths of the README's source-tree block (the lines after `src/stockgate/`)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("src/stockgate/") + 1
    end = lines.index("```", start)
    return {line.split()[0] for line in lines[start:end] if line.strip()}


def _tree_on_disk() -> set[str]:
    """Every package down to two levels (a folder holding Python files) and top module."""
    src = ROOT / "src" / "stockgate"
    found = {p.name for p in src.glob("*.py") if not p.name.startswith("__")}
    for folder in [*src.glob("*/"), *src.glob("*/*/")]:
        if folder.is_dir() and any(folder.glob("*.py")):
            found.add(folder.relative_to(src).as_posix() + "/")
    return found


def test_the_readme_source_tree_matches_the_tree() -> None:
    listed, present = _tree_in_readme(), _tree_on_disk()
    src = ROOT / "src" / "stockgate"
    assert [p for p in listed if not (src / p).exists()] == [], "listed but gone"
    assert sorted(present - listed) == [], "add a line to the README's source tree"
