"""Training hooks: the Callback protocol and CallbackList (base.py) and the built-in callbacks, one module each."""
