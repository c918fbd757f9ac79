"""One folder per task (vision/, tabular/, text/), each a Task (tasks/base.py) found by the registry (tasks/registry.py)."""
