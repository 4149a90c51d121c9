"""The ``poolskip`` sub-commands, one module each (``add_arguments(parser)``, ``run(args) -> int``), wired
in :mod:`poolskip.cli`. Commands parse, call the library and print; the work lives in the library."""
