"""The data layer every task shares: item sources, targets and their vocabulary, splitters, tables read from CSV, and
the loader protocol the Learner uses (with data-parallel sharding)."""
