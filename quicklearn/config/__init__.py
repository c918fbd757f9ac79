"""Recipes: the shared sections (sections.py), the schema built from the registered tasks (schema.py), YAML files (files.py) and running a recipe (run.py)."""
