"""Recipes: the schema (dataclasses), loading (YAML, `_base_`, overrides) and validation into finished settings."""

from hfcls.recipe.load import load_recipe, recipe_from_dict, recipe_yaml, save_recipe
from hfcls.recipe.schema import Recipe

__all__ = ["Recipe", "load_recipe", "recipe_from_dict", "recipe_yaml", "save_recipe"]
