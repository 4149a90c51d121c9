"""The bottom-layer helpers every loader and task share: sharding, reduction, the cache folder."""

from pathlib import Path

import pytest
import torch

from poolskip.data.cache import cache_root
from poolskip.dist import Dist


@pytest.mark.parametrize("n,world", [(10, 2), (7, 3), (2, 4), (0, 2)])
def test_shards_are_contiguous_and_together_the_whole_batch(n, world):
    shares = [Dist(r, world).shard(n) for r in range(world)]
    assert torch.equal(torch.cat(shares), torch.arange(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_one_process_is_the_identity():
    one = Dist()
    assert torch.equal(one.shard(5), torch.arange(5)) and one.every_nth("abcde") == list("abcde")
    t = torch.tensor([1.0, 2.0])
    assert one.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    assert one.is_main and one.device == torch.device("cpu")


def test_every_nth_deals_items_round_robin():
    assert [Dist(r, 3).every_nth(list(range(8))) for r in range(3)] == [[0, 3, 6], [1, 4, 7], [2, 5]]


def test_a_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match="rank must be in"):
        Dist(2, 2)


def test_cache_root_is_the_named_folder_or_the_xdg_default(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root(None) == tmp_path / "poolskip" and cache_root("") == tmp_path / "poolskip"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(None) == tmp_path / "home" / ".cache" / "poolskip"
    assert cache_root("~/c") == Path(tmp_path / "home" / "c")
