import os

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


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o027])
def test_atomic_writes_respect_the_umask(tmp_path, umask):
    """The temporary file is 0600 (mkstemp); the file it becomes has what open() would give it."""
    from poolskip.files import atomic_save

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_save({"w": 1}, tmp_path / "b.pt")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
