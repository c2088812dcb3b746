"""Helpers shared by test modules, imported one way: ``from tests.helpers.<topic> import ...``.

Fixtures stay in the ``conftest.py`` files; plain functions and types live here.
"""
