"""The layer contracts (pyproject.toml, checked by lint-imports) cover every module.

lint-imports checks only the modules a contract names, so a new top-level module or
package of syncd that no layer lists would escape the contracts; these tests make adding
one to a layer part of adding it (ARCHITECTURE.md says which layer is which).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _layers(optional: bool = True) -> list[set[str]]:
    """The names in each layer, top first; ``optional``: with those in parentheses (which
    lint-imports accepts when absent)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"]
                    if c["id"] == "layers")
    layers = []
    for layer in contract["layers"]:
        names = [name.strip() for name in re.split(r"[|:]", layer)]
        layers.append({name.strip("()") for name in names
                       if optional or not name.startswith("(")})
    return layers


def _top_level(package: str) -> set[str]:
    """The modules and subpackages directly inside ``package`` (a directory of the repo)."""
    found = set()
    for path in (ROOT / package).iterdir():
        if path.suffix == ".py" and path.stem != "__init__":
            found.add(f"{package}.{path.stem}")
        elif path.is_dir() and (path / "__init__.py").exists():
            found.add(f"{package}.{path.name}")
    return found


def test_every_syncd_module_has_a_layer() -> None:
    named = set().union(*_layers())
    assert _top_level("syncd") - named == set()


def test_every_layer_names_modules_that_exist() -> None:
    named = set().union(*_layers(optional=False))
    existing = _top_level("syncd") | {"connectors"}
    assert named - existing == set()


def test_connectors_sit_between_the_engine_and_the_base() -> None:
    layers = _layers()
    where = {name: i for i, layer in enumerate(layers) for name in layer}
    assert where["syncd.engine"] < where["connectors"] < where["syncd.model"]
    assert where["connectors"] == where["syncd.crm"] == where["syncd.store"]
