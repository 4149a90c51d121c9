"""``poolskip --help`` stays cheap (no torch import) and every help text is plain text, not reStructuredText."""

import re
import subprocess
import sys

import pytest

from poolskip.cli import COMMANDS, main, plain

# Commands whose argument setup needs the task registry and config keys (which live with torch code).
NEEDS_REGISTRY = {"train", "reproduce"}

PROBE = """
import runpy, sys
sys.argv = ["poolskip", *sys.argv[1:]]
try:
    runpy.run_module("poolskip", run_name="__main__")
except SystemExit:
    pass
print("torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--help"], *[[c, "--help"] for c in COMMANDS if c not in NEEDS_REGISTRY]])
def test_help_does_not_import_torch(args):
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True)
    assert "usage: poolskip" in out.stdout
    assert out.stderr.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"] if command else ["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: poolskip")
    assert "``" not in text and not re.search(r":[a-z]+:`", text), text


def test_plain_strips_rst_roles_and_literals():
    assert plain("``poolskip train`` and :class:`~poolskip.errors.PoolskipError`") == "poolskip train and PoolskipError"
    assert plain(":func:`the folder <poolskip.integrations.nnunet.trainer_dir>`, `x`") == "the folder, x"
    assert plain("as follows::\n") == "as follows:\n"
