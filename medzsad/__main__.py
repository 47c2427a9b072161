"""``python -m medzsad`` runs the command line."""

from __future__ import annotations

import sys

from medzsad.cli import main

sys.exit(main())
