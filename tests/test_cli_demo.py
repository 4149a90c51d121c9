import re
import subprocess
import sys

from poolskip.cli import main


def test_demo_prints_table(capsys):
    assert main(["demo", "--seeds", "0", "1", "--epochs", "1", "--width", "8"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\| (plain|pool_skip) \| ([\d,]+) \| ([\d.]+) ± ([\d.]+) \| ([\d.]+) \|$", out, re.M)
    assert [r[0] for r in rows] == ["plain", "pool_skip"]
    plain, ps = (int(r[1].replace(",", "")) for r in rows)
    assert ps > plain
    assert all(0.0 <= float(r[2]) <= 100.0 for r in rows)


def test_demo_rejects_bad_epochs(capsys):
    assert main(["demo", "--epochs", "0"]) == 2
    assert "--epochs must be >= 1" in capsys.readouterr().err


def test_console_entry_point_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "poolskip", "--help"], capture_output=True, text=True, check=True)
    assert "demo" in out.stdout


def test_demo_table_of_one_seed_states_no_spread():
    from poolskip.commands.demo import format_table

    rows = [{"variant": "plain", "params": 1000, "error_mean": 41.5, "error_std": None, "seconds": 3.0}]
    assert "| plain | 1,000 | 41.50 | 3.0 |" in format_table(rows)  # not "± 0.00": one run has no std
