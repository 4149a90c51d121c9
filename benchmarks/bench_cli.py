"""Start-up time of the ``poolskip`` command: ``poolskip --help`` and ``poolskip COMMAND --help``.

Each invocation runs in a fresh Python process (``python -m poolskip ...``) ``--rounds`` times; the table
gives the best and the median wall time and whether the process imported torch. ``python -c pass`` and
``python -c "import torch"`` are the floor and the cost that a lazy import avoids. A timing belongs here,
not in a test: the test suite only checks that ``poolskip --help`` does not import torch.

    python benchmarks/bench_cli.py                # every command, 5 rounds
    python benchmarks/bench_cli.py --rounds 3 --commands train demo
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from poolskip.cli import COMMANDS  # cheap: the command modules are not imported

# runs the command as `python -m poolskip` would, then says whether torch got imported
PROBE = """
import runpy, sys
sys.argv = ["poolskip", *sys.argv[1:]]
try:
    runpy.run_module("poolskip", run_name="__main__")
except SystemExit:
    pass
print("torch" in sys.modules, file=sys.stderr)
"""


def wall_times(cmd: list[str], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return times


def imports_torch(args: list[str]) -> bool:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], check=True, capture_output=True, text=True)
    return out.stderr.strip().splitlines()[-1] == "True"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--commands", nargs="*", default=list(COMMANDS), help="sub-commands whose --help to time")
    args = p.parse_args()

    rows = [("python -c pass", [sys.executable, "-c", "pass"], None)]
    rows.append(('python -c "import torch"', [sys.executable, "-c", "import torch"], True))
    rows.append(("poolskip --help", [sys.executable, "-m", "poolskip", "--help"], imports_torch(["--help"])))
    script = shutil.which("poolskip")
    if script:
        rows.append(("console script: poolskip --help", [script, "--help"], None))
    for name in args.commands:
        rows.append((f"poolskip {name} --help", [sys.executable, "-m", "poolskip", name, "--help"],
                     imports_torch([name, "--help"])))  # fmt: skip

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {load:.1f} at start, best and median of {args.rounds} fresh processes")  # fmt: skip
    print("\n| invocation | best s | median s | imports torch |\n|---|---:|---:|---|")
    for label, cmd, torch_flag in rows:
        t = wall_times(cmd, args.rounds)
        flag = "" if torch_flag is None else ("yes" if torch_flag else "no")
        print(f"| `{label}` | {min(t):.2f} | {statistics.median(t):.2f} | {flag} |")
    if hasattr(os, "getloadavg"):
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
