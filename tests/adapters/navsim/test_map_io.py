"""Round trip RoadMap -> nuPlan map package -> RoadMap, the on-disk layout the devkit needs, and errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely

import adapters.navsim.map_reader as map_reader
from adapters.navsim.map_reader import _utm_forward, read_nuplan_map
from adapters.navsim.map_writer import (
    LAYER_SCHEMAS,
    NUPLAN_MAP_LOCATIONS,
    NUPLAN_MAPS_VERSION,
    gpkg_path,
    write_nuplan_maps,
)
from harness.errors import MapError
from harness.maps import RoadMap
from tests.fixtures_maps import build_fixture_map

LOCATION = "us-nv-las-vegas-strip"

# Id columns the devkit converts with astype(int) / str(): they must come back integer-typed (no NULLs).
DEVKIT_ID_COLUMNS = {
    "lanes_polygons": ["lane_fid", "lane_group_fid", "lane_index", "left_boundary_fid", "right_boundary_fid"],
    "lane_group_connectors": ["from_lane_group_fid", "to_lane_group_fid", "intersection_fid"],
    "lane_connectors": ["exit_lane_fid", "entry_lane_fid", "lane_group_connector_fid"],
    "gen_lane_connectors_scaled_width_polygons": [
        "lane_connector_fid",
        "left_boundary_fid",
        "right_boundary_fid",
    ],
    "stop_polygons": ["stop_polygon_type_fid"],
}


@pytest.fixture(scope="module")
def fixture_map() -> RoadMap:
    return build_fixture_map()


@pytest.fixture(scope="module")
def maps_root(tmp_path_factory: pytest.TempPathFactory, fixture_map: RoadMap) -> Path:
    root = tmp_path_factory.mktemp("maps")
    write_nuplan_maps(fixture_map, root, raster_resolution_m=0.5)
    return root


def assert_same_map(a: RoadMap, b: RoadMap) -> None:
    """Field-by-field equality; polygons within 1e-6 m, polylines exactly (float64 WKB)."""
    assert (a.location, a.version, a.projected_crs) == (b.location, b.version, b.projected_crs)
    for name in (
        "lanes",
        "lane_connectors",
        "roadblocks",
        "roadblock_connectors",
        "boundaries",
        "intersections",
        "stop_lines",
        "crosswalks",
        "walkways",
        "carparks",
    ):
        left, right = getattr(a, name), getattr(b, name)
        assert sorted(left) == sorted(right), name
        for key, obj in left.items():
            other = right[key]
            for field in dataclasses.fields(obj):
                x, y = getattr(obj, field.name), getattr(other, field.name)
                if isinstance(x, shapely.Geometry):
                    assert x.equals_exact(y, tolerance=1e-6), (name, key, field.name)
                elif isinstance(x, np.ndarray):
                    np.testing.assert_allclose(x, y, atol=1e-9, err_msg=f"{name}[{key}].{field.name}")
                else:
                    assert x == y, (name, key, field.name, x, y)


def test_round_trip_fixture_map(maps_root: Path, fixture_map: RoadMap) -> None:
    back = read_nuplan_map(maps_root, LOCATION)
    assert_same_map(fixture_map, back)
    # The pieces the devkit reads, spelled out (assert_same_map already covers them, this documents them).
    tl = [c for c in back.lane_connectors.values() if c.has_traffic_light]
    assert len(tl) == 15 and all(back.stop_lines[c.stop_line_ids[0]].type == 2 for c in tl)
    (yield_turn,) = [c for c in back.lane_connectors.values() if not c.has_traffic_light]
    assert back.stop_lines[yield_turn.stop_line_ids[0]].type == 4
    assert {c.intersection_id for c in back.roadblock_connectors.values()} == {1}
    assert sum(lane.speed_limit_mps is None for lane in back.lanes.values()) == 1


def test_legacy_alias_and_copies_under_every_location(maps_root: Path, fixture_map: RoadMap) -> None:
    assert_same_map(fixture_map, read_nuplan_map(maps_root, "las_vegas"))
    own = gpkg_path(maps_root, LOCATION, "9.15.1915").read_bytes()
    for loc, version in NUPLAN_MAP_LOCATIONS.items():
        assert gpkg_path(maps_root, loc, version).read_bytes() == own
        other = read_nuplan_map(maps_root, loc)
        assert (other.location, other.version) == (loc, version)
        assert sorted(other.lanes) == sorted(fixture_map.lanes)


def test_layers_columns_and_integer_dtypes(maps_root: Path, fixture_map: RoadMap) -> None:
    path = gpkg_path(maps_root, LOCATION, "9.15.1915")
    layers = dict(pyogrio.list_layers(path))
    expected = {name: geom for name, (geom, _) in LAYER_SCHEMAS.items()}
    assert layers == expected
    for name, (_, columns) in LAYER_SCHEMAS.items():
        info = pyogrio.read_info(path, layer=name)
        assert info["fid_column"] == "fid"
        assert list(info["fields"]) == [c for c, _ in columns], name
    for name, columns in DEVKIT_ID_COLUMNS.items():
        # The numpy read path is the one the devkit's read_dataframe takes: NULLs would turn these into float.
        meta, _, _, values = pyogrio.raw.read(path, layer=name, columns=columns, read_geometry=False)
        for col, arr in zip(meta["fields"], values):
            assert arr.dtype.kind == "i", (name, col, arr.dtype)
    # FIDs are the object ids.
    _, fids, _, _ = pyogrio.raw.read(path, layer="lanes_polygons", columns=[], return_fids=True)
    assert sorted(fids.tolist()) == sorted(fixture_map.lanes)
    _, fids, _, _ = pyogrio.raw.read(path, layer="lane_connectors", columns=[], return_fids=True)
    assert sorted(fids.tolist()) == sorted(fixture_map.lane_connectors)
    # lane_fid mirrors the FID (the devkit checks a lane's existence through it).
    _, fids, _, (lane_fid,) = pyogrio.raw.read(
        path, layer="lanes_polygons", columns=["lane_fid"], return_fids=True
    )
    np.testing.assert_array_equal(fids, lane_fid)
    with sqlite3.connect(path) as con:
        ddl = con.execute("SELECT sql FROM sqlite_master WHERE name = 'lanes_polygons'").fetchone()[0]
    assert (
        '"lane_index" MEDIUMINT' in ddl
        and '"lane_group_fid" INTEGER' in ddl
        and '"speed_limit_mps" REAL' in ddl
    )


def test_meta_table_and_crs(maps_root: Path) -> None:
    path = gpkg_path(maps_root, LOCATION, "9.15.1915")
    _, _, _, (keys, values) = pyogrio.raw.read(path, layer="meta", read_geometry=False)
    meta = dict(zip(keys, values))
    assert meta["projectedCoordSystem"] == "EPSG:32611"
    assert pyogrio.read_info(path, layer="lanes_polygons")["crs"] == "EPSG:32611"


def test_json_and_raster_caches(maps_root: Path, fixture_map: RoadMap) -> None:
    doc = json.loads((maps_root / f"{NUPLAN_MAPS_VERSION}.json").read_text())
    assert set(doc) == set(NUPLAN_MAP_LOCATIONS)
    for loc, version in NUPLAN_MAP_LOCATIONS.items():
        assert doc[loc]["version"] == version
        for layer in ("drivable_area", "intersection"):
            entry = doc[loc]["layers"][layer]
            tm = np.asarray(entry["transform_matrix"])
            assert tm.shape == (4, 4) and tm[0, 0] == pytest.approx(2.0)  # 1 / 0.5 m per pixel
            data = np.load(maps_root / loc / version / f"{layer}.npy.npz")["data"]
            assert (
                data.dtype == np.uint8
                and list(data.shape) == entry["shape"]
                and set(np.unique(data)) <= {0, 1}
            )
    # The devkit's MapLayer.to_pixel_coords: round(tm @ [x, y, 0, 1]).
    tm = np.asarray(doc[LOCATION]["layers"]["drivable_area"]["transform_matrix"])
    drivable = np.load(maps_root / LOCATION / "9.15.1915" / "drivable_area.npy.npz")["data"]
    inter = np.load(maps_root / LOCATION / "9.15.1915" / "intersection.npy.npz")["data"]
    for (x, y), on_road, in_inter in [((40.0, 1.75), 1, 0), ((0.0, 0.0), 1, 1), ((40.0, 25.0), 0, 0)]:
        col, row = np.round(tm @ np.array([x, y, 0.0, 1.0]))[:2].astype(int)
        assert (drivable[row, col], inter[row, col]) == (on_road, in_inter)
    assert not list(maps_root.glob(".lead-bench-staging-*"))


def test_rewrite_replaces_own_map(tmp_path: Path, fixture_map: RoadMap) -> None:
    write_nuplan_maps(fixture_map, tmp_path, raster_resolution_m=1.0)
    smaller = dataclasses.replace(fixture_map, carparks={})
    write_nuplan_maps(smaller, tmp_path, raster_resolution_m=1.0)
    assert read_nuplan_map(tmp_path, LOCATION).carparks == {}


def test_writer_refuses_foreign_map_and_unknown_location(tmp_path: Path, fixture_map: RoadMap) -> None:
    with pytest.raises(MapError, match="unknown nuPlan map location"):
        write_nuplan_maps(dataclasses.replace(fixture_map, location="carla-town01"), tmp_path)
    foreign = gpkg_path(tmp_path, "us-ma-boston", "9.12.1817")
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"a real map we must not overwrite")
    with pytest.raises(MapError, match="did not write") as err:
        write_nuplan_maps(fixture_map, tmp_path)
    assert str(foreign) in str(err.value)
    assert foreign.read_bytes() == b"a real map we must not overwrite"


def test_writer_rejects_traffic_light_without_stop_line(tmp_path: Path, fixture_map: RoadMap) -> None:
    lc = next(iter(fixture_map.lane_connectors.values()))
    broken = dict(fixture_map.lane_connectors)
    broken[lc.id] = dataclasses.replace(lc, stop_line_ids=(), has_traffic_light=True)
    with pytest.raises(MapError, match="traffic_light_stop_line_fids"):
        write_nuplan_maps(dataclasses.replace(fixture_map, lane_connectors=broken), tmp_path)


def assert_identical_maps(a: RoadMap, b: RoadMap) -> int:
    """Bit-for-bit equality: every field equal and of the same type, geometries with the same WKB, arrays with
    the same dtype and bytes. Returns the number of object fields compared."""
    assert (a.location, a.version, a.projected_crs) == (b.location, b.version, b.projected_crs)
    compared = 0
    for layer in dataclasses.fields(a):
        left, right = getattr(a, layer.name), getattr(b, layer.name)
        if not isinstance(left, dict):
            continue
        assert list(left) == list(right), layer.name
        for key, obj in left.items():
            for field in dataclasses.fields(obj):
                x, y = getattr(obj, field.name), getattr(right[key], field.name)
                where = (layer.name, key, field.name)
                if isinstance(x, shapely.Geometry):
                    assert shapely.to_wkb(x) == shapely.to_wkb(y), where
                elif isinstance(x, np.ndarray):
                    assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes()), where
                else:
                    assert type(x) is type(y) and x == y, where
                compared += 1
    return compared


def read_with_gdal(monkeypatch: pytest.MonkeyPatch, root: Path, location: str) -> RoadMap:
    """The map read through pyogrio (GDAL), the direct SQLite reader switched off."""

    def refuse(path: Path) -> None:
        raise map_reader._NeedsGdal("test: GDAL path")

    with monkeypatch.context() as m:
        m.setattr(map_reader, "_read_gpkg_direct", refuse)
        return read_nuplan_map(root, location)


def test_direct_sqlite_reader_equals_gdal(monkeypatch: pytest.MonkeyPatch, maps_root: Path, tmp_path: Path) -> None:
    from harness.world.roads import build_road_map

    assert assert_identical_maps(read_nuplan_map(maps_root, LOCATION), read_with_gdal(monkeypatch, maps_root, LOCATION))
    world = build_road_map(0)
    write_nuplan_maps(world, tmp_path, raster_resolution_m=0.5)
    assert assert_identical_maps(read_nuplan_map(tmp_path, world.location),
                                 read_with_gdal(monkeypatch, tmp_path, world.location)) > 100


def test_direct_reader_leaves_unusual_packages_to_gdal(root_copy: Path) -> None:
    path = gpkg_path(root_copy, LOCATION, "9.15.1915")
    header = b"GP\x00\x01" + (0).to_bytes(4, "little")  # little-endian, no envelope
    point = shapely.to_wkb(shapely.Point(1.0, 2.0))
    assert shapely.equals(map_reader._gpkg_geometries([header + point])[0], shapely.Point(1.0, 2.0))
    for flags in (0x21, 0x11, 0x0B):  # extended encoding, empty geometry, envelope code 5
        with pytest.raises(map_reader._NeedsGdal):
            map_reader._gpkg_geometries([b"GP\x00" + bytes([flags]) + bytes(4) + point])
    with pytest.raises(map_reader._NeedsGdal):
        map_reader._gpkg_geometries([b"XX\x00\x01" + bytes(4) + point])
    # A CRS that is not an EPSG code: GDAL reads the package (and keeps the same map).
    direct = read_nuplan_map(root_copy, LOCATION)
    _sql(path, "UPDATE gpkg_spatial_ref_sys SET organization = 'OTHER' WHERE srs_id = 32611")
    with pytest.raises(map_reader._NeedsGdal, match="EPSG"):
        map_reader._read_gpkg_direct(path)
    assert sorted(read_nuplan_map(root_copy, LOCATION).lanes) == sorted(direct.lanes)


# --- reading errors --------------------------------------------------------------------------------------


@pytest.fixture
def root_copy(maps_root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "maps"
    shutil.copytree(maps_root, dst)
    return dst


def test_unknown_location(root_copy: Path) -> None:
    with pytest.raises(MapError, match="unknown nuPlan map location 'mars'") as err:
        read_nuplan_map(root_copy, "mars")
    assert str(root_copy) in str(err.value)


def test_missing_json(root_copy: Path) -> None:
    json_path = root_copy / f"{NUPLAN_MAPS_VERSION}.json"
    json_path.unlink()
    with pytest.raises(MapError, match="missing nuPlan maps json") as err:
        read_nuplan_map(root_copy, LOCATION)
    assert str(json_path) in str(err.value)


def test_missing_gpkg(root_copy: Path) -> None:
    path = gpkg_path(root_copy, LOCATION, "9.15.1915")
    path.unlink()
    with pytest.raises(MapError, match="missing GeoPackage") as err:
        read_nuplan_map(root_copy, LOCATION)
    assert str(path) in str(err.value)
    with pytest.raises(MapError, match="missing GeoPackage"):
        read_nuplan_map(root_copy, "us-ma-boston", version="0.0.0")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # GDAL warns about the bytes before failing
def test_corrupt_gpkg(root_copy: Path) -> None:
    path = gpkg_path(root_copy, LOCATION, "9.15.1915")
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    with pytest.raises(MapError, match="not a readable GeoPackage") as err:
        read_nuplan_map(root_copy, LOCATION)
    assert str(path) in str(err.value)


def _sql(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as con:
        for statement in statements:
            con.execute(statement)


def test_missing_layer(root_copy: Path) -> None:
    path = gpkg_path(root_copy, LOCATION, "9.15.1915")
    # GDAL lists a GeoPackage's layers from gpkg_contents.
    _sql(
        path,
        "DELETE FROM gpkg_contents WHERE table_name = 'baseline_paths'",
        "DELETE FROM gpkg_geometry_columns WHERE table_name = 'baseline_paths'",
    )
    with pytest.raises(MapError, match="missing layer 'baseline_paths'") as err:
        read_nuplan_map(root_copy, LOCATION)
    assert str(path) in str(err.value)


def test_missing_column(root_copy: Path) -> None:
    path = gpkg_path(root_copy, LOCATION, "9.15.1915")
    _sql(path, 'ALTER TABLE lane_connectors DROP COLUMN "traffic_light_stop_line_fids"')
    with pytest.raises(MapError, match=r"lane_connectors.*traffic_light_stop_line_fids") as err:
        read_nuplan_map(root_copy, LOCATION)
    assert str(path) in str(err.value)


def test_missing_projected_crs(root_copy: Path) -> None:
    path = gpkg_path(root_copy, LOCATION, "9.15.1915")
    _sql(path, "DELETE FROM meta WHERE key = 'projectedCoordSystem'")
    with pytest.raises(MapError, match="projectedCoordSystem") as err:
        read_nuplan_map(root_copy, LOCATION)
    assert str(path) in str(err.value)


# --- real maps store WGS84 lon/lat and reproject to UTM ------------------------------------------------


def test_utm_projection_matches_pyproj_golden_values() -> None:
    # Reference values from pyproj 3.7 (EPSG:4326 -> EPSG:326zz / 327zz, always_xy).
    cases = [
        (11, False, (-115.17, 36.12), (664691.9331399775, 3998809.0291747046)),
        (11, False, (-120.0, 40.0), (243900.3520297231, 4432069.056898517)),
        (48, False, (103.79, 1.30), (365381.6547774541, 143721.560480083)),
        (19, False, (-71.06, 42.36), (330357.2479143237, 4691803.150126871)),
        (17, False, (-79.94, 40.41), (589938.6370717271, 4473804.17463458)),
        (56, True, (151.2, -33.87), (333510.65008074325, 6250800.241183555)),
    ]
    for zone, south, lonlat, expected in cases:
        got = _utm_forward(zone, south)(np.array([lonlat]))[0]
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_wgs84_layers_are_reprojected_to_meta_crs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fixture_map: RoadMap
) -> None:
    # Store the map the way the official release does: layers in EPSG:4326, meta naming the UTM zone.
    origin_lonlat, deg_per_m = np.array([-115.17, 36.12]), 1e-5

    def to_lonlat(geom: shapely.Geometry) -> shapely.Geometry:
        return shapely.transform(geom, lambda xy: origin_lonlat + deg_per_m * xy)

    def move(obj: object) -> object:
        changes = {}
        for field in dataclasses.fields(obj):
            value = getattr(obj, field.name)
            if isinstance(value, shapely.Geometry):
                changes[field.name] = to_lonlat(value)
            elif field.name in ("baseline_xy", "line_xy"):
                changes[field.name] = origin_lonlat + deg_per_m * value
        return dataclasses.replace(obj, **changes)

    layers = (
        "lanes",
        "lane_connectors",
        "roadblocks",
        "roadblock_connectors",
        "boundaries",
        "intersections",
        "stop_lines",
        "crosswalks",
        "walkways",
        "carparks",
    )
    lonlat_map = dataclasses.replace(
        fixture_map,
        projected_crs="EPSG:4326",
        **{name: {k: move(v) for k, v in getattr(fixture_map, name).items()} for name in layers},
    )
    path = write_nuplan_maps(lonlat_map, tmp_path, raster_resolution_m=0.05)  # degrees here
    _sql(path, "UPDATE meta SET value = 'epsg:32611' WHERE key = 'projectedCoordSystem'")

    back = read_nuplan_map(tmp_path, LOCATION)
    assert back.projected_crs == "EPSG:32611"
    assert assert_identical_maps(back, read_with_gdal(monkeypatch, tmp_path, LOCATION))
    project = _utm_forward(11, south=False)
    for lane_id, lane in fixture_map.lanes.items():
        expected = project(origin_lonlat + deg_per_m * lane.baseline_xy)
        np.testing.assert_allclose(back.lanes[lane_id].baseline_xy, expected, atol=1e-6)
        ring = project(origin_lonlat + deg_per_m * np.asarray(lane.polygon.exterior.coords))
        assert back.lanes[lane_id].polygon.equals_exact(shapely.Polygon(ring), tolerance=1e-6)
    # One hand-checkable anchor: the map origin lands on pyproj's projection of (-115.17, 36.12).
    np.testing.assert_allclose(
        project(origin_lonlat[None])[0], (664691.9331399775, 3998809.0291747046), atol=1e-6
    )


def test_round_trip_embedded_world(tmp_path: Path) -> None:
    from harness.world.roads import build_road_map

    world = build_road_map(0)
    path = write_nuplan_maps(world, tmp_path, raster_resolution_m=0.5)
    assert path == gpkg_path(tmp_path, world.location, world.version)
    assert_same_map(world, read_nuplan_map(tmp_path, world.location))


def test_null_id_the_devkit_needs(root_copy: Path) -> None:
    path = gpkg_path(root_copy, LOCATION, "9.15.1915")
    with sqlite3.connect(path) as con:
        # GDAL's spatial-index triggers call SpatiaLite functions plain sqlite3 lacks; the geometry is untouched.
        triggers = con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'lanes_polygons'"
        )
        for (name,) in triggers.fetchall():
            con.execute(f'DROP TRIGGER "{name}"')
        con.execute(
            "UPDATE lanes_polygons SET lane_group_fid = NULL WHERE fid = (SELECT MIN(fid) FROM lanes_polygons)"
        )
    with pytest.raises(MapError, match="lane_group_fid is NULL") as err:
        read_nuplan_map(root_copy, LOCATION)
    assert str(path) in str(err.value)
