"""``python -m syncd`` runs the command-line interface."""

from syncd.cli import main

raise SystemExit(main())
