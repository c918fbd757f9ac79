"""Collaborative filtering: (user, item, rating) rows -> user and item embeddings with biases -> predicted ratings,
recommendations and similar items. One folder: task.py is the Task the registry finds."""
