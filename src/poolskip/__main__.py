"""``python -m poolskip`` is the ``poolskip`` command (and what ``torchrun -m poolskip`` runs)."""

from .cli import main

if __name__ == "__main__":  # spawned workers (reproduce --jobs) import this module again: they must not rerun it
    raise SystemExit(main())
