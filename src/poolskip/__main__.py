"""``python -m poolskip`` is the ``poolskip`` command (and what ``torchrun -m poolskip`` runs)."""

from .cli import main

raise SystemExit(main())
