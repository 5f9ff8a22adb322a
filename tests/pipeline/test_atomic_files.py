import pytest

from pipeline.store.atomic_files import atomic_write, holds_json, write_json_atomic


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "a.json"
    with atomic_write(target, "w") as f:
        f.write("old")
    assert target.read_text() == "old"
    with pytest.raises(RuntimeError), atomic_write(target, "w") as f:
        f.write("half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old"  # untouched, and no temporary file left behind
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]
    with atomic_write(target) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new"


def test_holds_json_compares_a_recorded_recipe(tmp_path):
    marker = tmp_path / "recipe.json"
    assert not holds_json(marker, {"seed": 1})  # absent
    write_json_atomic(marker, {"seed": 1, "set": ["a=1"]})
    assert holds_json(marker, {"seed": 1, "set": ["a=1"]})
    assert not holds_json(marker, {"seed": 2, "set": ["a=1"]})


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    from pipeline.store.atomic_files import atomic_write

    mask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "out.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(mask)
    assert (tmp_path / "out.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's private 0600


def test_an_object_store_write_is_one_upload_and_nothing_on_an_error(tmp_path):
    """``whole_file`` without rename (an object store's way), played on the local disk: the
    object appears only complete, and a write that fails leaves none."""
    import pyarrow.fs as pafs
    import pytest

    from pipeline.store.locations import whole_file

    fs = pafs.LocalFileSystem()
    target = (tmp_path / "coco.json").as_posix()
    with whole_file(fs, target, "w", rename=False) as f:
        f.write('{"images": []}')
        assert not (tmp_path / "coco.json").exists()  # spooled, not yet uploaded
    assert (tmp_path / "coco.json").read_text() == '{"images": []}'
    with pytest.raises(RuntimeError), whole_file(fs, (tmp_path / "b.bin").as_posix(), rename=False) as f:
        f.write(b"half")
        raise RuntimeError("the writer died")
    assert not (tmp_path / "b.bin").exists()
