"""Test support shared by tests/ and bench/: emulators, real servers on loopback ports.

Not part of the installed wheel (pyproject excludes it); tests and the benchmark import it
from the source tree. Nothing here imports ``tests``.
"""
