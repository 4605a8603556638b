"""Recipes: the schema (dataclasses), loading (YAML, `_base_`, overrides) and validation into finished settings."""

from hfcls.recipe.load import load_recipe, recipe_from_dict, recipe_yaml, save_recipe

__all__ = ["load_recipe", "recipe_from_dict", "recipe_yaml", "save_recipe"]
