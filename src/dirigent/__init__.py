"""Dirigent: services, mesh, durable Step Functions workflows and a conductor from one manifest."""

__version__ = "0.1.0"

__all__ = ["__version__"]
