"""stockgate: sells limited stock to many buyers at once without overselling."""

__version__ = "0.1.0"
