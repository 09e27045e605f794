"""The ``dirigent`` command line."""
