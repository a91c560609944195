"""civicbot: a civic assistant that answers questions about public policy documents."""

__version__ = "0.1.0"
