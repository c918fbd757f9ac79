"""`quicklearn check`: what is wrong with a data set before training on it.

The machinery every task shares lives here, one module per responsibility: the objects (findings.py), running a
task's checkers (run.py), the Python entry point `ql.check` (api.py), grouping duplicates (duplicates.py) and
splitting the groups by train/validation (leakage.py), class counts (classes.py), label errors from a
cross-validated probe ranked by confident learning (labels.py), outliers by embedding distance (outliers.py),
cached embeddings (store.py), the files --out writes (write.py), contact sheets (sheets.py) and the terminal summary
(summary.py). What each task checks comes from the task (`Task.data_checks`, in tasks/<name>/checks.py).
"""
