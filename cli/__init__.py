"""Sub-commands of ``carejourney``, one module per concern; each exposes ``register(app)``."""
