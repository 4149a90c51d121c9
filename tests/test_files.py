import pytest

from poolskip.files import atomic_write, atomic_write_text


def test_failed_write_keeps_old_content_and_leaves_no_temp(tmp_path):
    path = tmp_path / "summary.json"
    atomic_write_text(path, "old\n")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        atomic_write(path, boom)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    atomic_write_text(tmp_path / "new" / "config.yaml", "a: 1\n")  # makes the directory
    assert (tmp_path / "new" / "config.yaml").read_text() == "a: 1\n"
