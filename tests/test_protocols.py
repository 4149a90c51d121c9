"""The paper's protocols: each recipe holds what the paper states (paper_protocols.yaml), every paper-scale
run is its recipe plus only what names its cell, quick/tiny runs add only their declared overlay, and every
paper-scale run fits one 80 GiB GPU."""

import pytest

from poolskip.engine.config import make_config
from poolskip.experiments.recipes import load_recipe
from poolskip.experiments.reproduce import COMMANDS, PAPER, plan
from poolskip.experiments.reproduce.estimate import GiB, _eval_bytes, _net, _step_batch, geometry, peak_memory
from poolskip.experiments.reproduce.protocols import ROW_KEYS, dataset_overrides, overlay, paper_protocols


def _column_recipes(table: str, column: str) -> dict[str, str]:
    """model -> recipe of a paper column, as paper_protocols.yaml names it."""
    recipe = paper_protocols()[table]["columns"][column]["recipe"]
    if isinstance(recipe, str):
        return {n.model: recipe for n in PAPER[table].nets}
    return recipe


def _stated(table: str):
    for column, spec in paper_protocols()[table]["columns"].items():
        for model, recipe in _column_recipes(table, column).items():
            yield column, model, recipe, spec


@pytest.mark.parametrize("table", COMMANDS)
def test_each_recipe_holds_the_papers_stated_protocol(table):
    stated = paper_protocols()[table]
    assert set(stated["columns"]) == set(PAPER[table].columns)
    assert stated["seeds"] == len(PAPER[table].seeds) and stated.get("folds") == (
        len(PAPER[table].folds) if PAPER[table].folds else None
    )
    for column, model, recipe, spec in _stated(table):
        assert PAPER[table].recipe(column, model) == recipe  # the table trains the recipe the protocol names
        own = load_recipe(recipe)
        # the recipe with the stated values laid over it is the recipe: it already holds every one of them
        plain = make_config(own, {"model": model}).to_dict()
        stated_cfg = make_config(own, {"model": model}, spec["protocol"], spec["evaluation"]).to_dict()
        assert stated_cfg == plain, f"{recipe} differs from paper_protocols.yaml's {table}/{column}"
        if "iterations" in spec:  # an upstream step count, run as whole epochs: within one epoch of it
            cfg = make_config(own)
            steps = geometry(cfg.to_dict()).steps_per_epoch
            assert abs(cfg.optim.epochs * steps - spec["iterations"]) < steps, (recipe, cfg.optim.epochs, steps)


def test_the_drifts_of_table2_and_table3_are_gone():
    runs = plan("table2", "paper")
    city = [r.config for r in runs if r.dataset == "cityscapes"]
    voc = [r.config for r in runs if r.dataset == "voc"]
    assert {c["optim"]["epochs"] for c in city} == {162} and {c["optim"]["epochs"] for c in voc} == {46}
    assert {tuple(c["segmentation"]["scale_range"]) for c in city} == {(1.0, 1.0)}
    assert {c["segmentation"]["color_jitter"] for c in city} == {0.5}
    assert {c["optim"]["lr"] for c in city} == {0.1} and {c["optim"]["lr"] for c in voc} == {0.01}
    for c in city + voc:  # never the whole validation split in one batch, a handful of evaluations
        assert c["run"]["eval_batch_size"] <= 8 and c["optim"]["epochs"] / c["run"]["eval_every"] <= 20
    t3 = plan("table3", "paper")
    assert {r.config["optim"]["grad_clip"] for r in t3} == {12.0}
    assert {r.config["optim"]["epochs"] // r.config["run"]["eval_every"] for r in t3} == {20}
    assert {r.config["segmentation3d"]["iterations"] for r in t3} == {250}
    # folds have a field of their own; the seed stays the model's seed
    assert sorted({r.fold for r in t3}) == [0, 1, 2, 3, 4] and {r.seed for r in t3} == {0}
    assert all(r.config["segmentation3d"]["fold"] == r.fold for r in t3)
    amos_nnunet = {str(r.config["pool_skip"]) for r in t3 if r.dataset == "amos" and r.model == "nnunet"}
    assert amos_nnunet == {"None", "nnunet_amos"}  # the paper: every encoder stage but the last on AMOS


@pytest.mark.parametrize("table", COMMANDS)
def test_every_paper_scale_run_is_its_recipe_plus_its_cell(table):
    runs = plan(table, "paper")
    if table == "table4":  # a control's cell too (matching widths of the deep nets takes minutes)
        runs += [r for r in plan(table, "paper", controls=True, seeds=[0]) if r.key in ("wide", "depthwise")]
    assert runs
    for r in runs:
        assert set(r.layers["row"]) <= ROW_KEYS, sorted(set(r.layers["row"]) - ROW_KEYS)
        assert not r.layers["scale"] and not r.layers["dataset"] and not r.layers["cli"]
        # resolved by the engine's own path, as `poolskip train --recipe R --set ...` would
        assert r.config == make_config(load_recipe(r.recipe), r.layers["row"]).to_dict(), r.name
        assert r.recipe == PAPER[table].recipe(r.column, r.model)
        assert r.config["data"]["dataset"] == r.column and r.config["run"]["seed"] == r.seed


@pytest.mark.parametrize("scale", ["quick", "tiny"])
@pytest.mark.parametrize("table", COMMANDS)
def test_quick_and_tiny_runs_add_only_their_declared_overlay(table, scale):
    ov = overlay(table, scale)
    for r in plan(table, scale):
        assert set(r.layers["row"]) <= ROW_KEYS
        assert r.layers["scale"] == {**ov.config, **ov.per_model.get(r.model, {})}
        assert r.layers["dataset"] == dataset_overrides(r.dataset) and not r.layers["cli"]
        assert r.recipe == (ov.recipe or PAPER[table].recipe(r.column, r.paper_model))
        expected = make_config(load_recipe(r.recipe), r.layers["row"], r.layers["scale"], r.layers["dataset"])
        assert r.config == expected.to_dict()


def test_command_line_overrides_are_a_layer_of_their_own():
    runs = plan("table1", "quick", epochs=10, train_subset=300, threads=1, data_dir="/d")
    for r in runs:
        assert r.layers["cli"] == {
            "data_dir": "/d",
            "train_subset": 300,
            "threads": 1,
            "epochs": 10,
            "warmup_epochs": 2.0,  # the declared one-cycle keeps its shape: warm-up a fifth of training
        }
        assert r.config["optim"]["epochs"] == 10 and r.config["data"]["train_subset"] == 300
    for r in plan("table1", "paper", epochs=10):  # a recipe's step schedule is squeezed instead
        assert r.layers["cli"] == {"epochs": 10, "milestones": [3, 6, 8]}


def test_every_paper_scale_run_fits_one_80_gib_gpu():
    """Peak memory of a training step and of an evaluation batch, counted on the meta device, for every
    paper-scale run of every table. Runs of the same network, optimiser, step batch and data shapes are counted
    once, by the one with the most classes: the seeds, folds, learning rates and schedules of a row do not change
    the memory, and CIFAR-10's runs (BTCV's) differ from CIFAR-100's (AMOS's) only in the classes, which can only
    add to it (the last layer's weights and the logits)."""
    chosen = {}
    for table in COMMANDS:
        for r in plan(table, "paper"):
            c, g = r.config, geometry(r.config)
            run = {k: v for k, v in c["run"].items() if k != "seed"}
            task = {k: v for k, v in (c.get(c["task"]) or {}).items() if k != "fold"}
            shapes = (g.train_shape, g.eval_shape, g.eval_window, g.eval_batch, _step_batch(r, g))
            key = repr((r.model, c["model_kwargs"], c["pool_skip"], c["optim"]["optimizer"], run, task, shapes))
            if key not in chosen or g.classes > chosen[key][1]:
                chosen[key] = (r, g.classes)
    seen = {key: (r.name, *peak_memory(r)) for key, (r, _) in chosen.items()}
    assert len(seen) > 40, len(seen)
    too_big = [(name, t / GiB, e / GiB) for name, t, e in seen.values() if max(t, e) >= 80 * GiB]
    assert not too_big
    # the count sees what a step holds: a billion-parameter Pool Skip ResNet420 needs more than its weights
    deep = [t for name, t, _ in seen.values() if "ResNet420_pool_skip" in name]
    assert deep and min(deep) > 3 * 4 * 1.3e9


@pytest.mark.parametrize("table", ["table1", "table5"])
def test_an_evaluations_peak_memory_is_what_its_own_pass_counts(table):
    """peak_memory scales the training pass's count to the evaluation batch where an evaluation sees inputs of
    the training shape (CNNs, a transformer): the same bytes as counting an evaluation pass of its own."""
    runs = plan(table, "tiny")
    assert all(geometry(r.config).eval_shape == geometry(r.config).train_shape for r in runs)  # the scaled count
    for r in runs:
        g = geometry(r.config)
        assert peak_memory(r)[1] == _eval_bytes(_net(r, g, "meta"), g), r.name
