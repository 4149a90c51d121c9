"""poolskip.diagnostics on constructed weights and activations whose measures are known by hand."""

import copy
import csv
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import poolskip
from poolskip.diagnostics import channel_measures, diagnose, hoyer, l2_l1, near_zero, probe_measures, write_report

FIGURES = {"l2_l1.png", "hoyer.png", "dead_units.png", "grad_norm.png"}


def test_weight_measures_by_hand():
    w = torch.tensor([3.0, 4.0, 0.0, 0.0])  # l1 7, l2 5, n 4
    assert l2_l1(w) == pytest.approx(5 / 7)
    assert hoyer(w) == pytest.approx((2 - 7 / 5) / (2 - 1))  # 0.6
    assert near_zero(w) == 0.5  # threshold 0.01 * rms = 0.025
    equal = torch.tensor([1.0, -1.0, 1.0, -1.0])
    assert l2_l1(equal) == pytest.approx(1 / math.sqrt(4)) and hoyer(equal) == pytest.approx(0.0)
    one_hot = torch.tensor([0.0, 0.0, -2.0, 0.0, 0.0])
    assert l2_l1(one_hot) == pytest.approx(1.0) and hoyer(one_hot) == pytest.approx(1.0)
    zero = torch.zeros(6)
    assert (l2_l1(zero), hoyer(zero), near_zero(zero)) == (1.0, 1.0, 1.0)
    assert math.isnan(hoyer(torch.tensor([5.0])))
    # the threshold is relative to the layer's scale: scaling all weights changes nothing
    assert near_zero(1e-6 * torch.tensor([3.0, 4.0, 1e-5, 0.0])) == 0.5


def test_conv_with_k_zero_channels():
    conv = nn.Conv2d(2, 5, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:2] = torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)  # 2 live channels, k = 3 zero ones
    (s,) = diagnose(nn.Sequential(conv), torch.randn(1, 2, 3, 3)).layers
    n, nonzero = 10, 4  # 4 equal magnitudes out of 10 weights
    assert s.l2_l1 == pytest.approx(math.sqrt(nonzero) / nonzero)
    assert s.hoyer == pytest.approx((math.sqrt(n) - math.sqrt(nonzero)) / (math.sqrt(n) - 1))
    assert s.near_zero == pytest.approx(3 / 5)
    assert s.channel_near_zero == [0.0, 0.0, 1.0, 1.0, 1.0]
    assert s.channel_l2_l1 == pytest.approx([1 / math.sqrt(2)] * 2 + [1.0] * 3)
    assert s.channel_hoyer == pytest.approx([0.0, 0.0, 1.0, 1.0, 1.0])


def test_transposed_conv_channels_are_outputs():
    deconv = nn.ConvTranspose2d(4, 6, 2, groups=2, bias=False)  # weight (in 4, out/groups 3, 2, 2)
    with torch.no_grad():
        deconv.weight.fill_(1.0)
        deconv.weight[2:, 0] = 0.0  # group 1's first output channel is output channel 3
    zero_rows = channel_measures(poolskip.diagnostics.measures.output_channel_view(deconv))["near_zero"]
    assert zero_rows == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]


def test_dead_units_and_zero_fraction_by_hand():
    lin = nn.Linear(1, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.0], [1.0], [0.0]]))
        lin.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    x = torch.tensor([[-1.0], [1.0]])  # unit 0: -1, -1 (dead); unit 1: -1, 1; unit 2: 1, 1
    (a,) = diagnose(nn.Sequential(lin, nn.ReLU()), x).activations
    assert (a.name, a.kind, a.units) == ("1", "activation", 3)
    assert a.dead_units == pytest.approx(1 / 3) and a.dead_channels == pytest.approx(1 / 3)
    assert a.zero_fraction == pytest.approx(3 / 6)
    assert a.channel_zero_fraction == pytest.approx([1.0, 0.5, 0.0]) and a.channel_dead == [True, False, False]


def test_relu_fed_only_negatives_is_dead_across_batches():
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.fill_(0.0)
        conv.bias.copy_(torch.tensor([-0.5, 0.5]))  # channel 0 always negative, channel 1 always positive
    model = nn.Sequential(conv, nn.LeakyReLU(0.1))
    (a,) = diagnose(model, torch.randn(7, 1, 4, 4), batch_size=3).activations  # 3 + 3 + 1 samples
    assert (a.dead_units, a.dead_channels, a.zero_fraction) == (0.5, 0.5, 0.5)
    assert a.channel_dead == [True, False] and a.channels == 2 and a.units == 2 * 16


class _Reversed(nn.Module):
    """Registers its layers in the opposite order of use and calls one ReLU twice."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(4, 2)
        self.mid = nn.Linear(4, 4)
        self.stem = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.unused = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.act(self.mid(self.act(self.stem(x)))))


def test_forward_order_not_registration_order():
    d = diagnose(_Reversed(), torch.randn(4, 3))
    assert [(s.name, s.index, s.called) for s in d.layers] == [
        ("stem", 0, True),
        ("mid", 1, True),
        ("head", 2, True),
        ("unused", 3, False),
    ]
    assert [(a.name, a.call, a.index) for a in d.activations] == [("act", 1, 0), ("act:2", 2, 1)]
    assert [r["name"] for r in d.rows()] == ["stem", "act", "mid", "act:2", "head", "unused"]


def _cnn():
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(*block(3, 4), *block(4, 4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def test_converted_and_plain_line_up_layer_by_layer():
    torch.manual_seed(0)
    plain = _cnn()
    converted = copy.deepcopy(plain)
    report = poolskip.convert(converted, pool_size=2)
    x, y = torch.randn(5, 3, 6, 6), torch.tensor([0, 1, 2, 0, 1])
    dp, dc = diagnose(plain, x, y), diagnose(converted, x, y)
    # the plain rows match one to one, same names, indices and weight measures
    assert [(s.name, s.index) for s in dc.plain_layers()] == [(s.name, s.index) for s in dp.plain_layers()]
    assert [s.l2_l1 for s in dc.plain_layers()] == [s.l2_l1 for s in dp.plain_layers()]
    assert [a.name for a in dc.activation_sites()] == [a.name for a in dp.activation_sites()]
    # Pool Skip's inner conv is its own row right after its host; its output is its own site
    inner = dc.pool_skip_layers()
    assert [(s.name, s.host) for s in inner] == [(f"{p.name}.pool_skip.conv", p.name) for p in report.converted]
    assert [s.name for s in dc.layers][:3] == ["0", "0.pool_skip.conv", "3"]
    assert all(s.called and s.grad_norm > 0 for s in inner)
    outputs = [a for a in dc.activations if a.kind == "pool_skip_output"]
    assert [(a.name, a.index) for a in outputs] == [("0.pool_skip", 0), ("3.pool_skip", 1)]
    assert [a.name for a in dc.activations][:2] == ["0.pool_skip", "2"]  # Pool Skip output feeds BN -> ReLU
    assert "pool_skip_l2_l1_mean" in dc.summary() and "pool_skip_l2_l1_mean" not in dp.summary()


def test_gradient_norm_by_hand_and_no_side_effects():
    lin = nn.Linear(2, 1, bias=False)
    bn = nn.BatchNorm1d(2)
    model = nn.Sequential(bn, lin).train()
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    running = bn.running_mean.clone()
    # eval-mode BN at init is the identity (up to eps); loss = mean output -> dL/dW = mean(x) = (2, 4)
    d = diagnose(model, x, torch.zeros(2), loss_fn=lambda out, t: out.mean())
    assert d.layers[0].grad_norm == pytest.approx(math.hypot(2.0, 4.0), rel=1e-4)
    assert lin.weight.grad is None and model.training and bn.training
    assert torch.equal(bn.running_mean, running)
    with torch.no_grad():
        assert d.loss == pytest.approx(float(model.eval()(x).mean()))


def test_gradient_stops_at_a_dead_layer():
    first, last = nn.Linear(2, 2), nn.Linear(2, 3)
    with torch.no_grad():
        first.bias.fill_(-100.0)  # every ReLU input negative: no gradient reaches `first`
    d = diagnose(nn.Sequential(first, nn.ReLU(), last), torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2]))
    g = {s.name: s.grad_norm for s in d.layers}
    assert g["0"] == 0.0 and g["2"] == 0.0  # dead ReLU: zero input to `last` too
    assert d.activations[0].dead_units == 1.0
    assert diagnose(nn.Sequential(first), torch.randn(2, 2)).layers[0].grad_norm is None  # no targets


def test_a_loss_over_valid_pixels_is_the_same_at_every_batch_size():
    """Segmentation's probe loss is a mean over the pixels not ignored: weighted by their count
    (loss_weight), split batches give the loss and gradients of the whole probe set, and a batch of
    only ignored pixels adds nothing instead of NaN."""
    import torch.nn.functional as F

    ignore = 255
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))
    x = torch.randn(5, 2, 6, 7)
    y = torch.randint(0, 3, (5, 6, 7))
    y[1, :4] = ignore  # images with different numbers of valid pixels
    y[3, :, :2] = ignore
    y[4] = ignore  # with batch_size 1 or 2 a batch of only ignored pixels

    def loss(out, t):
        return F.cross_entropy(out, t, ignore_index=ignore)

    def valid(t):
        return int((t != ignore).sum())

    whole = diagnose(model, x, y, loss_fn=loss, loss_weight=valid)
    with torch.no_grad():
        assert whole.loss == pytest.approx(float(loss(model(x), y)))
    for batch_size in (1, 2, 3):
        split = diagnose(model, x, y, loss_fn=loss, loss_weight=valid, batch_size=batch_size)
        assert math.isfinite(split.loss) and split.loss == pytest.approx(whole.loss, rel=1e-5)
        for a, b in zip(whole.layers, split.layers):
            assert b.grad_norm == pytest.approx(a.grad_norm, rel=1e-4), (batch_size, a.name)
    nothing = diagnose(model, x[4:], y[4:], loss_fn=loss, loss_weight=valid)  # no pixel counts at all
    assert math.isnan(nothing.loss) and all(s.grad_norm is None for s in nothing.layers)
    assert nothing.activations[0].units == 4 * 6 * 7  # still probed


def test_probe_measures_flat_floats_on_a_converted_resnet():
    from poolskip.models import create_model

    model = create_model("resnet18", num_classes=10, width=2, pool_skip=True)
    m = probe_measures(model, torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]))
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    assert {"l2_l1_max", "dead_units_mean", "grad_norm_min", "probe_loss"} <= set(m)
    assert 0 < m["l2_l1_max"] <= 1 and 0 <= m["dead_units_mean"] <= 1


def test_write_report_csv_and_plots(tmp_path):
    torch.manual_seed(0)
    plain = _cnn()
    converted = copy.deepcopy(plain)
    poolskip.convert(converted, pool_size=2)
    x, y = torch.randn(3, 3, 6, 6), torch.tensor([0, 1, 2])
    diags = {"plain": diagnose(plain, x, y), "Pool Skip S2": diagnose(converted, x, y)}
    paths = write_report(diags, tmp_path)
    rows = list(csv.DictReader(paths["csv:Pool Skip S2"].open()))
    d = diags["Pool Skip S2"]
    assert [r["name"] for r in rows] == [r["name"] for r in d.rows()]
    assert len(rows) == len(d.layers) + len(d.activations)
    assert (tmp_path / "Pool_Skip_S2_channels.csv").exists() and (tmp_path / "summary.json").exists()
    for name in ("l2_l1", "hoyer", "dead_units", "grad_norm"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="distinct labels"):
        write_report({"a b": diags["plain"], "a_b": diags["plain"]}, tmp_path)


def test_write_report_refuses_an_earlier_report_and_overwrite_removes_only_its_files(tmp_path):
    """A second report into one folder left the first one's CSVs beside the new summary.json."""
    from poolskip.diagnostics import report_files

    torch.manual_seed(0)
    x, y = torch.randn(3, 3, 6, 6), torch.tensor([0, 1, 2])
    d = diagnose(_cnn(), x, y)
    assert report_files(tmp_path) == []
    write_report({"plain": d, "S2": d}, tmp_path)
    (tmp_path / "notes.csv").write_text("the user's own\n")
    (tmp_path / ".S2.csv.abc123.tmp").write_text("a write stopped midway")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    earlier = {p.name for p in report_files(tmp_path)}
    assert earlier == {*before} - {"notes.csv"}
    with pytest.raises(FileExistsError, match="already holds a diagnose report"):
        write_report({"S4": d}, tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written
    write_report({"S4": d}, tmp_path, overwrite=True)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"S4.csv", "S4_channels.csv", "summary.json", "notes.csv"} | FIGURES
    assert (tmp_path / "notes.csv").read_text() == "the user's own\n"
    # a report stopped before its summary: its CSV pairs are its files too
    (tmp_path / "summary.json").unlink()
    assert {p.name for p in report_files(tmp_path)} == names - {"notes.csv", "summary.json"}


def test_report_files_are_written_atomically(tmp_path, monkeypatch):
    """A CSV or figure whose writing fails midway leaves the earlier file whole (it was truncated first)."""
    from matplotlib.figure import Figure

    from poolskip.diagnostics import plot_l2_l1, write_csv

    torch.manual_seed(0)
    d = diagnose(_cnn(), torch.randn(3, 3, 6, 6), torch.tensor([0, 1, 2]))
    csv_path, png_path = write_csv(d, tmp_path / "m.csv"), plot_l2_l1({"m": d}, tmp_path / "l2_l1.png")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_rows(self, rows):
        self.writerow(next(iter(rows)))
        raise OSError("disk full")

    def broken_savefig(self, fname, **kw):
        (fname.write if hasattr(fname, "write") else Path(fname).write_bytes)(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(csv.DictWriter, "writerows", broken_rows)
    with pytest.raises(OSError, match="disk full"):
        write_csv(d, csv_path)
    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_l2_l1({"m": d}, png_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two real `poolskip train` runs (plain, Pool Skip) of the demo's small CNN on 64 digits, 1 epoch."""
    from poolskip.diagnostics import ProbeMonitor
    from poolskip.engine.config import make_config
    from poolskip.engine.trainer import train

    root = tmp_path_factory.mktemp("runs")
    base = {"dataset": "digits", "model": "small_cnn", "model_kwargs": {"width": 4}, "epochs": 1}
    base |= {"train_subset": 64, "eval_batch_size": 500}
    runs = {}
    for name, ps in (("plain", None), ("ps", True)):
        runs[name] = root / name
        train(make_config(base, {"pool_skip": ps}), runs[name], callbacks=[ProbeMonitor(1)], log=lambda *a, **k: None)
    return runs


def test_training_monitor_logs_probe_measures(tiny_runs):
    record = json.loads((tiny_runs["ps"] / "metrics.jsonl").read_text().splitlines()[-1])
    diag = record["diagnostics"]
    assert {"l2_l1_max", "pool_skip_l2_l1_mean", "dead_units_mean", "grad_norm_min"} <= set(diag)
    assert all(isinstance(v, float) for v in diag.values())


def test_diagnose_command_on_run_dirs(tiny_runs, tmp_path, capsys):
    from poolskip.cli import main
    from poolskip.engine.checkpoint import CheckpointError, load_checkpoint

    out = tmp_path / "diag"
    args = ["diagnose", str(tiny_runs["plain"]), str(tiny_runs["ps"] / "checkpoints" / "best.pt")]
    argv = [*args, "--labels", "plain", "S2", "--probe-size", "40", "--out", str(out), "--which", "best"]
    assert main(argv) == 0  # the plain run's best.pt (weights only), the Pool Skip run's best.pt file
    printed = capsys.readouterr().out
    assert "plain: small_cnn (plain), epoch 1" in printed
    assert "S2: small_cnn (pool_skip, policy every_conv, 3 sites, pool 2), epoch 1" in printed
    assert "(None)" not in printed and "(True)" not in printed and "at layer" not in printed
    best_model, best_info = load_checkpoint(tiny_runs["plain"], "best")
    assert "optimizer" not in best_info and best_info["metric"].keys() == {"test_error"}
    layer, kind = printed.splitlines()[0].split(" at '")[1].split("' (")[:2]  # "at '0' (Conv2d, layer 1 of 4)"
    module = dict(best_model.named_modules())[layer]
    assert kind.startswith(type(module).__name__ + ", layer ")
    assert {p.name for p in out.iterdir()} >= {"plain.csv", "S2.csv", "summary.json", "l2_l1.png", "dead_units.png"}
    plain_rows = [r for r in csv.DictReader((out / "plain.csv").open()) if r["kind"] in ("conv", "linear")]
    ps_rows = [r for r in csv.DictReader((out / "S2.csv").open()) if r["kind"] in ("conv", "linear")]
    assert [r["name"] for r in plain_rows] == [r["name"] for r in ps_rows]
    model, info = load_checkpoint(tiny_runs["ps"])
    assert info["epoch"] == 1 and any(n.endswith("pool_skip.conv.weight") for n in model.state_dict())
    with pytest.raises(CheckpointError, match="checkpoints/best.pt not found"):
        load_checkpoint(tmp_path, "best")
    for argv, message in (
        ([*args, "--labels", "only-one"], "one label per path"),
        (["diagnose", str(tmp_path / "nothing.pt")], "nothing.pt not found: expected a checkpoint"),
        ([*args, "--data", "nope"], "unknown dataset 'nope'"),
        ([*args, "--dataset", "nope", "--checkpoint", "best"], "unknown dataset 'nope'"),  # eval's spelling, or this
    ):
        assert main(argv) == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "pool_skip, words",
    [
        ("none", "plain"),
        ("plain", "plain"),
        (False, "plain"),
        (4, "pool_skip, policy every_conv, 3 sites, pool 4"),
        ({"variant": "conv_skip"}, "pool_skip-conv_skip, policy every_conv, 3 sites, pool 2"),
        ({"groups": "depthwise"}, "pool_skip-depthwise, policy every_conv, 3 sites, pool 2"),
        ({"pool_size": [2, 3]}, "pool_skip, policy every_conv, 3 sites, pool 2x3"),
    ],
)
def test_diagnose_model_line_names_the_placement_as_train_does(pool_skip, words):
    """A plain run configured `pool_skip: none` is plain, and an ablation/control dict is named as `train`
    names it (placement_name), not "Pool Skip policy none" / "Pool Skip pool size {...}"."""
    from poolskip.commands.diagnose import _model_line
    from poolskip.models import create_model

    model = create_model("small_cnn", num_classes=10, in_channels=1, width=4, pool_skip=pool_skip)
    info = {"config": {"model": "small_cnn", "pool_skip": pool_skip}, "epoch": 3}
    assert _model_line(info, model) == f"small_cnn ({words}), epoch 3"


def test_diagnose_into_a_folder_with_a_report_needs_overwrite(tiny_runs, tmp_path, capsys):
    """The default --out is `diagnose`, so a second run into it was easy: it replaced summary.json and the PNGs
    but kept the first run's CSVs of other models beside them. Refused before any model is probed."""
    from poolskip.cli import main

    out = tmp_path / "diag"
    common = ["--probe-size", "8", "--out", str(out)]
    assert main(["diagnose", str(tiny_runs["plain"]), str(tiny_runs["ps"]), *common]) == 0
    (out / "notes.txt").write_text("the user's own\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    again = ["diagnose", str(tiny_runs["ps"]), str(tmp_path / "nothing.pt"), "--labels", "PS-only", "x", *common]
    assert main(again) == 2  # the --out error, not the missing checkpoint's: checked before probing
    err = capsys.readouterr().err
    assert f"--out {out} already holds a diagnose report (" in err and "plain.csv" in err and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["diagnose", str(tiny_runs["ps"]), "--labels", "PS-only", *common, "--overwrite"]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"PS-only.csv", "PS-only_channels.csv", "summary.json", "notes.txt"} | FIGURES
    assert list(json.loads((out / "summary.json").read_text())) == ["PS-only"]
    # a run directory holds a summary.json too, not a report's: never replaced, --overwrite or not
    run = tiny_runs["ps"]
    kept = (run / "summary.json").read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main(["diagnose", str(run), "--probe-size", "8", "--out", str(run), *extra]) == 2
        assert "is not a diagnose report's (a run directory's?)" in capsys.readouterr().err
    assert (run / "summary.json").read_bytes() == kept


@pytest.mark.parametrize("flag", ["--which", "--checkpoint"])
def test_diagnose_refuses_which_that_contradicts_a_checkpoint_file(tiny_runs, tmp_path, capsys, flag):
    """`diagnose RUN/checkpoints/last.pt --which best` probed last.pt without a word."""
    from poolskip.cli import main

    last = tiny_runs["ps"] / "checkpoints" / "last.pt"
    out = tmp_path / "diag"
    assert main(["diagnose", str(tiny_runs["plain"]), str(last), flag, "best", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{last} is the last checkpoint, but --which best asks for the best one" in err
    assert not out.exists()  # refused before any model was probed


@pytest.mark.parametrize("name", ["vit_7_4_32", "cvt_7_4_32", "cct_7_3x1_32"])
def test_a_transformers_mlp_activations_are_watched_sites(name):
    """Each encoder layer's GELU is an activation site (ViT has no other: it reported none before)."""
    from poolskip.models import create_model

    torch.manual_seed(0)
    net = create_model(name, 10, dim=32, num_layers=2, num_heads=2, mlp_ratio=1)
    sites = [a.name for a in diagnose(net, torch.randn(3, 3, 32, 32)).activation_sites()]
    assert [s for s in sites if s.startswith("blocks.")] == ["blocks.0.activation", "blocks.1.activation"], sites
