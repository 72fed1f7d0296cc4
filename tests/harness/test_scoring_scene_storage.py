"""Scoring-scene storage: drivable patches shared by the scenes of a log, verified, rebuilt when damaged."""

from __future__ import annotations

import dataclasses
import io
import shutil

import numpy as np
import pytest
import shapely

from adapters.navsim.reader import NavsimReader
from adapters.navsim.scoring_scenes import ScoringSceneCache
from harness.errors import DataError
from harness.npz_store import _grouped, _npz_view, _ungrouped, grouped_npz_bytes, npz_bytes
from harness.scoring_scene import DRIVABLE_PATCH_DIR, ScoringScene, stored_arrays


def _assert_equal(a: ScoringScene, b: ScoringScene) -> None:
    for f in dataclasses.fields(ScoringScene):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name in ("light_polygons", "drivable_polygons"):
            assert len(x) == len(y) and all(shapely.equals_exact(x, y, tolerance=0.0)), f.name
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


@pytest.fixture()
def log_cache(small_world_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(small_world_root / "navsim_logs", root / "navsim_logs")
    shutil.copytree(small_world_root / "maps", root / "maps")
    reader = NavsimReader(root, "test")
    windows = reader.windows()
    log_name = windows[reader.index()[0].token].log_name
    tokens = [r.token for r in reader.index() if windows[r.token].log_name == log_name][:12]
    return ScoringSceneCache(tmp_path / "cache", reader, root / "maps"), log_name, tokens


def test_scenes_of_a_log_share_drivable_patches(log_cache):
    cache, log_name, tokens = log_cache
    built = [cache.get(t) for t in tokens]
    patches = sorted((cache.cache_dir / log_name / DRIVABLE_PATCH_DIR).glob("*.npz"))
    refs = {str(stored_arrays(cache.path_of(log_name, t))["drivable_ref"]) for t in tokens}
    assert {p.stem for p in patches} == refs
    assert 1 <= len(patches) < len(tokens)  # consecutive scenes of a log see the same map objects
    loaded = [ScoringScene.load(cache.path_of(log_name, t)) for t in tokens]
    for a, b in zip(loaded, built, strict=True):
        _assert_equal(a, b)
        assert not a.drivable_polygons.flags.writeable and not a.drivable_ids.flags.writeable
    # Scenes of one patch share its arrays (read once).
    by_ref: dict[str, ScoringScene] = {}
    for t, scene in zip(tokens, loaded, strict=True):
        ref = str(stored_arrays(cache.path_of(log_name, t))["drivable_ref"])
        if ref in by_ref:
            assert scene.drivable_polygons is by_ref[ref].drivable_polygons
        by_ref.setdefault(ref, scene)
    # Scene files no longer carry the polygons.
    stored = stored_arrays(cache.path_of(log_name, tokens[0]))
    assert not any(k.startswith("drivable_") for k in stored if k != "drivable_ref")
    # A few .npz members (arrays grouped by storage type), not one per array.
    assert len(np.load(cache.path_of(log_name, tokens[0])).files) <= 8 < len(stored)


def test_damaged_or_missing_patch_fails_the_scene_and_the_cache_rebuilds_it(log_cache, tmp_path):
    cache, log_name, tokens = log_cache
    token = tokens[0]
    first = cache.get(token)
    ref = str(stored_arrays(cache.path_of(log_name, token))["drivable_ref"])
    patch = cache.cache_dir / log_name / DRIVABLE_PATCH_DIR / f"{ref}.npz"
    # A copy elsewhere (a fresh path, so no process memory of it): flip one coordinate byte of the patch.
    other = tmp_path / "copy" / log_name
    other.mkdir(parents=True)
    shutil.copy(cache.path_of(log_name, token), other / f"{token}.npz")
    (other / DRIVABLE_PATCH_DIR).mkdir()
    with np.load(patch) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["polygons__coords"] = arrays["polygons__coords"].copy()
    arrays["polygons__coords"][0, 0] += 1e-9
    np.savez(other / DRIVABLE_PATCH_DIR / f"{ref}.npz", **arrays)
    with pytest.raises(DataError, match="does not match its digest"):
        ScoringScene.load(other / f"{token}.npz")
    (other / DRIVABLE_PATCH_DIR / f"{ref}.npz").unlink()
    with pytest.raises(DataError, match="cannot read drivable patch"):
        ScoringScene.load(other / f"{token}.npz")

    # In the cache itself: a garbled patch is noticed, the scene rebuilt and the patch written again.
    fresh = ScoringSceneCache(cache.cache_dir, cache.reader, cache.maps_root)
    patch.write_bytes(b"garbage")
    from harness import scoring_scene

    scoring_scene._PATCHES._read.clear()  # a new process would not remember the intact patch
    again = fresh.get(token)
    assert fresh.built == 1
    _assert_equal(again, first)
    scoring_scene._PATCHES._read.clear()
    _assert_equal(ScoringScene.load(cache.path_of(log_name, token)), first)


def test_patch_reference_must_be_a_digest(log_cache, tmp_path):
    cache, log_name, tokens = log_cache
    cache.get(tokens[0])
    with np.load(cache.path_of(log_name, tokens[0])) as z:
        members = {k: z[k] for k in z.files}
    layout = members["__layout__"].tolist()
    ref = next(i for i, e in enumerate(layout) if e.startswith("drivable_ref:"))
    members["__layout__"] = np.array(layout[:ref] + layout[ref + 1 :] + [f"drivable_ref:<U16:{members['<u4'].size}:"])
    members["<u4"] = np.concatenate([members["<u4"], np.array("../../etc/passwd").reshape(1).view("<u4")])
    bad = tmp_path / "bad.npz"
    np.savez(bad, **members)
    with pytest.raises(DataError, match="not a digest"):
        ScoringScene.load(bad)


def test_garbled_layout_is_a_data_error(log_cache, tmp_path):
    cache, log_name, tokens = log_cache
    cache.get(tokens[0])
    with np.load(cache.path_of(log_name, tokens[0])) as z:
        members = {k: z[k] for k in z.files}
    members["<f8"] = members["<f8"][:10]  # arrays now lie outside their member
    bad = tmp_path / "short.npz"
    np.savez(bad, **members)
    with pytest.raises(DataError, match="outside member"):
        ScoringScene.load(bad)
    del members["<f8"]
    np.savez(bad, **members)
    with pytest.raises(DataError, match="cannot read scoring scene"):
        ScoringScene.load(bad)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(10.0),
        np.array("a token"),
        np.array(["ab", "cde"]),
        np.zeros((3, 0, 2), dtype=bool),
        np.array(5),
        np.ones((4, 3), dtype=">i4")[:, ::2],
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.zeros((2, 3, 4, 5, 6, 7, 8, 9, 10), np.uint8),
        np.zeros(3, dtype=[("a", "<f8"), ("b", "<i2")]),
        *[np.zeros(n, dtype=np.float32) for n in (0, 1, 9, 10, 99, 100, 1000, 10000, 100000)],
    ],
)
def test_npz_bytes_members_equal_np_savez(array):
    """``npz_bytes`` writes each array's ``.npy`` member byte for byte as ``np.savez``, in a zip that
    ``zipfile`` validates and ``np.load`` reads back (shapes of every header length, orders, dtypes)."""
    import io
    import zipfile

    arrays = {"x": array, "y": np.arange(3)}
    ours = zipfile.ZipFile(io.BytesIO(npz_bytes(arrays)))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    theirs = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    assert ours.testzip() is None
    assert ours.namelist() == theirs.namelist() == ["x.npy", "y.npy"]
    for name in ours.namelist():
        assert ours.read(name) == theirs.read(name)
    with np.load(io.BytesIO(npz_bytes(arrays)), allow_pickle=False) as z:
        assert z["x"].dtype == array.dtype and z["x"].shape == array.shape
        np.testing.assert_array_equal(z["x"], array)
    with pytest.raises(ValueError, match="object"):
        npz_bytes({"o": np.array([None, 1], dtype=object)})
    # The drivable patches' one-buffer writer: the same bytes.
    assert bytes(_npz_view(arrays)) == npz_bytes(arrays)
    with pytest.raises(ValueError, match="object"):
        _npz_view({"o": np.array([None, 1], dtype=object)})


@pytest.mark.parametrize(
    "arrays",
    [
        {"a": np.arange(10.0), "b": np.array("tok"), "c": np.array(["ab", "cde"]), "d": np.zeros((3, 0, 2), bool),
         "e": np.array(5), "f": np.ones((4, 3), dtype=">i4")[:, ::2], "g": np.asfortranarray(np.ones((3, 4))),
         "h": np.arange(6.0).reshape(2, 3), "i": np.zeros(0, dtype=np.float32), "j": np.array(["x" * 40])},
        {"only": np.zeros((2, 3, 4), dtype=np.uint8)},
        {"s": np.zeros(3, dtype=[("a", "<f8"), ("b", "<i2")]), "t": np.arange(3)},
        {"big": np.random.default_rng(0).random((51, 300, 3)), "small": np.arange(3), "u": np.array(["a"] * 5)},
    ],
)
def test_grouped_npz_bytes_equal_npz_bytes_of_the_groups(arrays):
    """The one-buffer scene writer gives exactly ``npz_bytes(_grouped(arrays))`` (what earlier versions wrote),
    also when the reused assembly buffer held a larger file before, and the arrays read back."""
    grouped_npz_bytes({"x": np.ones(100_000)})  # leave a larger, dirty buffer behind
    ours = grouped_npz_bytes(arrays)
    assert ours == npz_bytes(_grouped(arrays))
    with np.load(io.BytesIO(ours), allow_pickle=False) as z:
        back = _ungrouped({k: z[k] for k in z.files})
    for name, a in arrays.items():  # (a big-endian array comes back in native order, as it always did)
        assert back[name].dtype == a.dtype.newbyteorder("=") and back[name].shape == a.shape
        np.testing.assert_array_equal(back[name], a)
    with pytest.raises(ValueError, match="cannot store"):
        grouped_npz_bytes({"o": np.array([None, 1], dtype=object)})


def test_scene_files_equal_the_grouped_npz_of_their_arrays(log_cache, tmp_path):
    """A saved scene's file is byte for byte ``npz_bytes(_grouped(...))`` of its stored arrays."""
    cache, log_name, tokens = log_cache
    for t in tokens[:3]:
        cache.get(t)
        path = cache.path_of(log_name, t)
        data = path.read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            members = {k: z[k] for k in z.files}
        assert npz_bytes(_grouped(_ungrouped(members))) == data


def test_light_polygons_packed_once_per_polygon_set_store_the_same_bytes(log_cache, tmp_path):
    from harness import scoring_scene

    cache, log_name, tokens = log_cache
    scenes = [cache.build(t) for t in tokens[:4]]
    assert any(len(s.light_polygons) for s in scenes)
    # Same polygon objects in every scene of the log (the map's): packed once, reused.
    scoring_scene._PACKED.clear()
    for i, s in enumerate(scenes):
        s.save(tmp_path / "memo" / f"{i}.npz")
    light_sets = {tuple(map(id, s.light_polygons)) for s in scenes if len(s.light_polygons)}
    assert light_sets <= set(scoring_scene._PACKED) and len(light_sets) < len(scenes)
    for i, s in enumerate(scenes):
        scoring_scene._PACKED.clear()  # packed afresh
        s.save(tmp_path / "fresh" / f"{i}.npz")
        assert (tmp_path / "memo" / f"{i}.npz").read_bytes() == (tmp_path / "fresh" / f"{i}.npz").read_bytes()
    # Equal polygons that are other objects are packed on their own (the key is identity, not content).
    scoring_scene._PACKED.clear()
    copies = [shapely.from_wkb(shapely.to_wkb(p)) for p in scenes[0].light_polygons]
    other = dataclasses.replace(scenes[0], light_polygons=np.array(copies, dtype=object))
    scenes[0].save(tmp_path / "a.npz")
    other.save(tmp_path / "b.npz")
    keys = {tuple(map(id, scenes[0].light_polygons)), tuple(map(id, other.light_polygons))}
    assert len(keys) == 2 and keys <= set(scoring_scene._PACKED)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
