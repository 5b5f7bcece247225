"""Benchmarks of syncd (see ``bench/README.md``)."""
