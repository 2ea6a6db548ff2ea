"""Gateway storage: SQLAlchemy models and the session factory."""
