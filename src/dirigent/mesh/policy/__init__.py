"""Pure policy cores of the mesh: frozen dataclasses and functions, nothing else.

Every module here decides; none of them acts. They never import asyncio,
socket, time, random or os (an import-linter contract holds them to it): the
clock's reading and random draws come in as arguments, so each decision can be
replayed exactly in a unit test.
"""
