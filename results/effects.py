"""Every difference the committed results measured, with its seed spread and Welch's t-test.

Reads the per-seed values from the committed files only (each run's ``summary.json``), so every number in
``effects.md`` can be traced to a file of this folder:

    python results/effects.py > results/effects.md

Welch's t-test (two-sided, unequal variances; ``scipy.stats.ttest_ind(equal_var=False)``) compares the
per-seed final values of two rows. "exceeds the seed spread" means p < 0.05. With 2-3 seeds per row the
test has little power: "no" means the difference is not distinguishable from seed noise, not that there
is none. A row with one seed has no spread and gets no test.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml
from scipy import stats

HERE = Path(__file__).resolve().parent


def run_values(pattern: str, key: str = "final") -> list[float]:
    """The ``key`` of every summary.json matching ``pattern`` (``final_metrics`` keys too)."""
    out = []
    for p in sorted(HERE.glob(pattern)):
        s = json.loads(p.read_text())
        out.append(float(s[key] if key in s else s["final_metrics"][key]))
    return out


#: config.yaml keys two runs of one row may differ in: the seed, and where the run was written
WHERE_AND_SEED = (("run", "seed"), ("run", "out_dir"), ("run", "run_name"))


def every_seed(patterns: list[str], key: str = "final") -> list[float]:
    """The ``key`` of every run whose summary.json matches one of ``patterns`` (runs of one row made by several
    commands: a table's re-run and the estimate checks' extra seeds), each seed once, after checking that their
    config.yaml agree in every key but the seed and where the run was written: only then are they one row."""
    files = sorted({f for pattern in patterns for f in HERE.glob(pattern)})
    first, seeds, out = None, set(), []
    for f in files:
        config = yaml.safe_load((f.parent / "config.yaml").read_text())
        seed = config["run"]["seed"]
        for section, k in WHERE_AND_SEED:
            config[section].pop(k, None)
        if first is None:
            first = (f.parent, config)
        elif config != first[1]:
            raise SystemExit(f"{f.parent} was trained otherwise than {first[0]}: not one row")
        if seed in seeds:
            raise SystemExit(f"{f.parent}: seed {seed} twice in one row")
        seeds.add(seed)
        s = json.loads(f.read_text())
        out.append(float(s[key] if key in s else s["final_metrics"][key]))
    return out


def fmt(values: list[float]) -> str:
    if not values:
        return "not finished"
    mean = statistics.fmean(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"


ROWS: list[tuple[str, str, str, list[float], list[float], str]] = []  # (where, what, metric, a, b, better)


def add(where: str, what: str, metric: str, a: list[float], b: list[float], better: str) -> None:
    """``what`` is "A vs B"; the difference is mean(A) − mean(B); ``better`` is "lower" or "higher"."""
    ROWS.append((where, what, metric, a, b, better))


# train-cifar10-resnet18w16-cpu: ResNet18 width 16, 2 epochs on 5,000 CIFAR-10 JPEGs, 2 seeds (summaries of
# 2026-11-27, written before tasks had monitors: the final test error is `final_error`)
c10 = "train-cifar10-resnet18w16-cpu/runs/resnet18w16_ps-{}/seed*/summary.json"
ps, plain = (run_values(c10.format(v), "final_error") for v in ("true", "false"))
add("train-cifar10-resnet18w16-cpu", "Pool Skip vs plain", "test error %", ps, plain, "lower")


def table1(where: str, net: str, rows: dict[str, list[float]]) -> None:
    """Table 1 with its controls: Pool Skip against plain and against each control, each control against plain."""
    plain, ours = rows["plain"], rows["ours"]
    controls = {name: v for name, v in rows.items() if name not in ("plain", "ours")}
    add(where, f"{net}: Pool Skip vs plain", "test error %", ours, plain, "lower")
    for name, values in controls.items():
        add(where, f"{net}: Pool Skip vs {name}", "test error %", ours, values, "lower")
    for name, values in controls.items():
        add(where, f"{net}: {name} vs plain", "test error %", values, plain, "lower")


CONTROLS = {"{Conv,Skip}": "conv_skip", "plain widened to Pool Skip's MACs": "wide", "depthwise Pool Skip": "depthwise"}

# repro-table1-quick-v2: the calibrated quick Table 1 (ResNet18 width 8: 4 epochs one-cycle at peak lr 0.02;
# MobileNet width 8: 6 epochs at peak lr 0.1; all 50,000 CIFAR-10 JPEGs, all 10,000 test images), seeds 0-2 as far
# as the re-run got; read from each finished run's summary.json (a row not finished yet has n=0)
t1v2 = "repro-table1-quick-v2/table1-quick/runs/imagefolder-as-cifar10_{}-width-8-_{}/seed*/summary.json"
for net in ("ResNet18", "MobileNet"):
    keys = {"plain": "plain", "ours": "pool_skip", **CONTROLS}
    table1("repro-table1-quick-v2", net, {name: run_values(t1v2.format(net, key)) for name, key in keys.items()})

# every seed of Table 1 quick's rows: the re-run's seeds 0-2 and the extra seeds estimate-check trained with the same
# config (only seed and run directory differ, checked by every_seed): plain MobileNet and ResNet18 seeds 0-6, the
# other rows 0-2 and those estimate-check timed (3, 4, 7 or 8)
t1e = "estimate-check/table1-quick/table1-quick/runs/imagefolder-as-cifar10_{}-width-8-_{}/seed*/summary.json"
for net in ("ResNet18", "MobileNet"):
    keys = {"plain": "plain", "ours": "pool_skip", **CONTROLS}
    table1("repro-table1-quick-v2 + estimate-check (every seed)", net,
           {name: every_seed([t1v2.format(net, key), t1e.format(net, key)]) for name, key in keys.items()})  # fmt: skip

# repro-table4-quick-v2: the calibrated quick regime (VGG16 width 8, 4 epochs of all 50,000 CIFAR-10 JPEGs, one-cycle
# at peak lr 0.02, all 10,000 test images), 3 seeds; read from each run's summary.json
t4 = "repro-table4-quick-v2/table4-quick/runs/imagefolder-as-cifar100_VGG16-width-8-_{}/seed*/summary.json"
v2 = {row: run_values(t4.format(key)) for row, key in (("VGG16", "plain"), ("+{Pool,Skip}", "pool_skip_only"),
      ("+{Conv,Skip}", "conv_skip"), ("+{Pool,Conv}", "pool_conv"), ("+{Ours}", "pool_skip"))}  # fmt: skip
for row in ("+{Ours}", "+{Pool,Skip}", "+{Conv,Skip}", "+{Pool,Conv}"):
    add("repro-table4-quick-v2", f"{row} vs plain VGG16", "test error %", v2[row], v2["VGG16"], "lower")
for a, b in (("+{Ours}", "+{Pool,Skip}"), ("+{Ours}", "+{Conv,Skip}"), ("+{Ours}", "+{Pool,Conv}"),
             ("+{Pool,Conv}", "+{Conv,Skip}")):  # fmt: skip
    add("repro-table4-quick-v2", f"{a} vs {b}", "test error %", v2[a], v2[b], "lower")

# every seed of Table 4 quick's rows, as for Table 1: plain seeds 0-7, every other row seeds 0-3 and 7
t4e = "estimate-check/table4-quick/table4-quick/runs/imagefolder-as-cifar100_VGG16-width-8-_{}/seed*/summary.json"
keys4 = (("VGG16", "plain"), ("+{Pool,Skip}", "pool_skip_only"), ("+{Conv,Skip}", "conv_skip"),
         ("+{Pool,Conv}", "pool_conv"), ("+{Ours}", "pool_skip"))  # fmt: skip
every = {row: every_seed([t4.format(key), t4e.format(key)]) for row, key in keys4}
for row in ("+{Ours}", "+{Pool,Skip}", "+{Conv,Skip}", "+{Pool,Conv}"):
    add("repro-table4-quick-v2 + estimate-check (every seed)", f"{row} vs plain VGG16", "test error %", every[row],
        every["VGG16"], "lower")  # fmt: skip
for a, b in (("+{Ours}", "+{Pool,Skip}"), ("+{Ours}", "+{Conv,Skip}"), ("+{Ours}", "+{Pool,Conv}"),
             ("+{Pool,Conv}", "+{Conv,Skip}")):  # fmt: skip
    add("repro-table4-quick-v2 + estimate-check (every seed)", f"{a} vs {b}", "test error %", every[a], every[b],
        "lower")  # fmt: skip

# seg2d-camvid-cpu (182 steps) and -12ep (540 steps): DeepLabv3+ MobileNetV2 from scratch, 2 seeds
for folder in ("seg2d-camvid-cpu", "seg2d-camvid-cpu-12ep"):
    runs = folder + "/runs/pool_skip_{}/seed*/summary.json"
    add(folder, "Pool Skip vs plain", "mIoU %", run_values(runs.format("true")), run_values(runs.format("false")),
        "higher")  # fmt: skip

# med3d-hippocampus-cpu-500steps: nnU-Net, fold 0, 500 steps, seeds 0 and 1
for metric in ("dice", "nsd", "iou"):
    ps = run_values("med3d-hippocampus-cpu-500steps/files/nnunet_pool_skip*/summary.json", metric)
    plain = run_values("med3d-hippocampus-cpu-500steps/files/nnunet_plain*/summary.json", metric)
    add("med3d-hippocampus-cpu-500steps", "nnU-Net: Pool Skip vs plain", f"{metric} %", ps, plain, "higher")


# estimate-check: runs made to time the dry run's estimate, in the quick regimes of Tables 2 and 3 (one run at a
# time, each with its own seed; see that folder's README): Table 2 quick (DeepLabv3+ on CamVid, 540 steps, the
# regime of seg2d-camvid-cpu-12ep) seeds 0 and 1; Table 3 quick's nnU-Net rows (Hippocampus fold 0, 500 steps,
# the regime of med3d-hippocampus-cpu-500steps) and V-Net rows seed 0; Fig. 3 quick's ResNet50 (width 4, 6 epochs
# of CIFAR-10) seed 0
t2q = "estimate-check/table2-quick/table2-quick/runs/camvid-as-cityscapes_DLP_MobileNet_{}/seed*/summary.json"
add("estimate-check (Table 2 quick)", "Pool Skip vs plain", "mIoU %", run_values(t2q.format("pool_skip")),
    run_values(t2q.format("plain")), "higher")  # fmt: skip
t3q = "estimate-check/table3-quick/table3-quick/runs/decathlon-as-btcv_{}_{}/fold0/summary.json"
for net, label in (("nnUNet", "nnU-Net"), ("V-Net", "V-Net")):
    for metric in ("dice", "nsd", "iou"):
        add("estimate-check (Table 3 quick)", f"{label}: Pool Skip vs plain", f"{metric} %",
            run_values(t3q.format(net, "pool_skip"), metric), run_values(t3q.format(net, "plain"), metric),
            "higher")  # fmt: skip
f3q = "estimate-check/fig3-quick/fig3-quick/runs/imagefolder-as-cifar10_ResNet50-width-4-_{}/seed*/summary.json"
add("estimate-check (Fig. 3 quick)", "ResNet50 w4: Pool Skip vs plain", "test error %",
    run_values(f3q.format("pool_skip")), run_values(f3q.format("plain")), "lower")  # fmt: skip

# gpu-cifar10-h200: benchmarks/gpu/compare.py on one H200 (2026-12-04), full-width MobileNet (32) and ResNet18 (64) on
# all of CIFAR-10, 8 epochs one-cycle, bf16; each against plain and plain widened to Pool Skip's MACs, 2 seeds
gpu = "gpu-cifar10-h200/runs/{}-{}/seed*/summary.json"
for net, name in (("mobilenet", "MobileNet w32"), ("resnet18", "ResNet18 w64")):
    ps, plain, wide = (run_values(gpu.format(net, v), "test_error") for v in ("pool_skip", "plain", "wide"))
    for what, a, b in (
        ("Pool Skip vs plain", ps, plain),
        ("Pool Skip vs plain widened to its MACs", ps, wide),
        ("plain widened to Pool Skip's MACs vs plain", wide, plain),
    ):
        add("gpu-cifar10-h200 (8 epochs)", f"{name}: {what}", "test error %", a, b, "lower")


def main() -> None:
    print("# Every measured difference, with its seed spread (generated by `effects.py`)\n")
    print(
        "Per-seed final values from the committed files of each folder. A − B: difference of the means; "
        "for Pool Skip?: whether A (Pool Skip or {Ours}) is the better side. Welch's t-test, two-sided, on the "
        "per-seed values; it exceeds the seed spread where p < 0.05. With 2-3 seeds per row the test has little "
        'power: "no" means not distinguishable from seed noise, not "no difference". None of these runs is '
        "the paper's protocol (see each folder's README).\n"
    )
    print("| results folder | comparison (A vs B) | metric | A (mean ± std) | B (mean ± std) | A − B | for Pool Skip? "
          "| Welch t, df, p | exceeds seed spread? |")  # fmt: skip
    print("|---|---|---|---:|---:|---:|---|---|---|")
    for where, what, metric, a, b, better in ROWS:
        if not a or not b:  # a row of a re-run still under way
            print(f"| {where} | {what} | {metric} ({better} is better) | {fmt(a)} (n={len(a)}) | {fmt(b)} "
                  f"(n={len(b)}) | — | — | — | not finished |")  # fmt: skip
            continue
        diff = statistics.fmean(a) - statistics.fmean(b)
        a_is_pool_skip = what.split(" vs ")[0].split(": ")[-1] in ("Pool Skip", "+{Ours}")
        good = (diff < 0) == (better == "lower")
        side = ("for" if good else "against") if a_is_pool_skip else "—"
        if min(len(a), len(b)) < 2:
            test, verdict = "—", "no spread (one seed)"
        else:
            r = stats.ttest_ind(a, b, equal_var=False)
            df = r.df if hasattr(r, "df") else float("nan")
            test, verdict = f"{r.statistic:+.2f}, {df:.1f}, {r.pvalue:.3f}", "yes" if r.pvalue < 0.05 else "no"
        print(
            f"| {where} | {what} | {metric} ({better} is better) | {fmt(a)} (n={len(a)}) | {fmt(b)} (n={len(b)}) "
            f"| {diff:+.2f} | {side} | {test} | {verdict} |"
        )


if __name__ == "__main__":
    main()
