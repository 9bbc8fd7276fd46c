"""Helpers shared by tests in several folders (and by bench/): import them as
``tests.support.<module>`` (pytest runs with ``--import-mode=importlib`` from the
repository root, which is on ``sys.path``)."""
