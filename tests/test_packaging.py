"""The wheel's package list (pyproject.toml) must name every package directory, since
envs/ and experts/ are mapped into il_toolkit and cannot be discovered automatically."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _on_disk() -> set[str]:
    found = set()
    for top, name in (("il_toolkit", "il_toolkit"), ("envs", "il_toolkit.envs"), ("experts", "il_toolkit.experts")):
        for init in (ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *relative)) if relative else name)
    return found


def test_every_package_directory_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _on_disk()
    assert config["package-dir"]["il_toolkit.envs"] == "envs"
    assert config["package-dir"]["il_toolkit.experts"] == "experts"
