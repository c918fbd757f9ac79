"""The one training loop (learner.py) and what it runs on: schedules, optimizers, metrics, the lr finder, mixing."""
