"""Reading a recipe: YAML files, `_base_` inheritance and `key.sub=value` overrides, then validation.

A recipe file is plain YAML. `_base_: [a.yaml, b.yaml]` lists files (relative to
the recipe) that are deep-merged in order, the recipe itself last; a mapping
holding `_delete_: true` replaces what it inherits instead of merging into it.
Command-line overrides `key.sub=value` are YAML-typed and applied last. The
merged mapping is then validated (`hfcls.recipe.validate`) into finished settings,
and its custom_imports are imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hfcls.errors import HfclsError
from hfcls.files import write_atomic
from hfcls.recipe.custom_imports import import_custom_modules
from hfcls.recipe.schema import Recipe
from hfcls.recipe.validate import validate

# A recipe holds a few hundred values; YAML aliases could make it hold billions.
MAX_RECIPE_VALUES = 100_000


def load_recipe(path, overrides=()) -> Recipe:
    """Read a recipe file, merge its bases, apply `key.sub=value` overrides, validate."""
    raw = _load_with_bases(Path(path), chain=())
    for override in overrides:
        apply_override(raw, override)
    recipe = recipe_from_dict(raw, where=str(path))
    recipe.source = str(path)
    return recipe


def recipe_from_dict(raw: dict, where="recipe") -> Recipe:
    """A merged mapping as a validated Recipe, its custom_imports imported."""
    recipe = validate(raw, where)
    import_custom_modules(recipe.custom_imports, where)
    return recipe


def recipe_yaml(recipe: Recipe) -> str:
    """The resolved recipe (bases merged, overrides applied) as YAML: `hfcls-train` can rerun from it alone."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)


def save_recipe(recipe: Recipe, path) -> None:
    """Write the resolved recipe; `hfcls-train` can rerun from this file alone."""
    write_atomic(path, recipe_yaml(recipe))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise HfclsError(f"recipe file {path} does not exist; check the path")
    data = _parse_yaml(path.read_bytes(), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HfclsError(f"{path}: a recipe must be a YAML mapping of sections, got {type(data).__name__}")
    return data


def _parse_yaml(text, where: str):
    """YAML text -> Python values, refusing what would not fit in memory once expanded."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise HfclsError(f"{where}:{line} invalid YAML ({problem}); fix the syntax there") from None
    except RecursionError:
        raise HfclsError(f"{where}: the YAML is nested too deeply to read; a recipe nests a few levels") from None
    check_expanded_size(data, where)
    return data


def check_expanded_size(data, where: str) -> None:
    """Refuse YAML whose aliases (&name ... *name) would write out more than a recipe can hold:
    a 1 KB file of nested aliases stands for billions of values."""
    count = expanded_size(data, where)
    if count > MAX_RECIPE_VALUES:
        raise HfclsError(
            f"{where}: its YAML aliases (*name) expand to {count:,} values, more than the "
            f"{MAX_RECIPE_VALUES:,} a recipe may hold; write the values out or nest fewer aliases"
        )


def expanded_size(value, where: str, sizes=None, open_=None) -> int:
    """How many values `value` holds with every YAML alias written out, counted without
    writing them out (a shared mapping or list is counted once per place that uses it)."""
    sizes = {} if sizes is None else sizes
    open_ = set() if open_ is None else open_
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise HfclsError(
            f"{where}: a YAML alias refers to the mapping or list that holds it; a recipe cannot contain itself"
        )
    open_.add(key)
    items = value.values() if isinstance(value, dict) else value
    sizes[key] = 1 + sum(expanded_size(item, where, sizes, open_) for item in items)
    open_.discard(key)
    return sizes[key]


def _load_with_bases(path: Path, chain: tuple) -> dict:
    path = path.resolve()
    if path in chain:
        raise HfclsError(f"{path}: _base_ files include each other in a cycle: {' -> '.join(map(str, chain))}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise HfclsError(
            f"{path}: _base_ must be a file name or a list of them (paths relative to the recipe), got {bases!r}"
        )
    merged: dict = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise HfclsError(f"{path}: _base_ file {base} not found (looked for {base_path})")
        merged = deep_merge(merged, _load_with_bases(base_path, chain + (path,)))
    return deep_merge(merged, data)


def deep_merge(base: dict, update: dict) -> dict:
    """Merge `update` into a copy of `base`: mappings recursively, anything else replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict):
            value = dict(value)
            replace = value.pop("_delete_", False)
            if not replace and isinstance(out.get(key), dict):
                value = deep_merge(out[key], value)
        out[key] = value
    return out


def apply_override(raw: dict, override: str) -> None:
    """Apply `a.b.c=value` (YAML-typed; list items by index: `a.0.b=1`) in place."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise HfclsError(f'override "{override}" must look like key.sub=value')
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except (yaml.YAMLError, RecursionError):
        raise HfclsError(f'override "{override}": the value is not valid YAML; quote it') from None
    check_expanded_size(value, f'override "{key}"')
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        child = _child(node, part, key)
        if child is None:
            child = {}
            _set(node, part, child, key)
        elif not isinstance(child, (dict, list)):
            raise HfclsError(f'override "{override}": {".".join(parts[: i + 1])} is a value, not a section')
        node = child
    _set(node, parts[-1], value, key)


def _child(node, part, key):
    if isinstance(node, list):
        return node[_index(node, part, key)]
    return node.get(part)


def _set(node, part, value, key):
    if isinstance(node, list):
        node[_index(node, part, key)] = value
    else:
        node[part] = value


def _index(node: list, part: str, key: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise HfclsError(f'override key {key}: "{part}" is not an index of a list of {len(node)} items')
    return int(part)
