"""Write a ``RoadMap`` as a nuPlan map package that nuplan-devkit (v1.2) and NAVSIM open unchanged.

Layout (``nuplan/database/maps_db/gpkg_mapsdb.py::GPKGMapsDB``)::

    maps_root/nuplan-maps-v1.0.json            {location: {"version": v, "layers": {raster: {...}}}}
    maps_root/<location>/<version>/map.gpkg    vector layers + the ``meta`` table
    maps_root/<location>/<version>/<raster>.npy.npz

What the devkit requires, and why each choice below is made:

- ``GPKGMapsDB.__init__`` opens layer ``lane_connectors`` of *every* location in its hard-coded
  ``MAP_LOCATIONS``, so all four locations are written; the map goes under its own location and
  byte-identical copies under the other three.
- Object ids are GeoPackage FIDs (``pyogrio.read_dataframe(..., fid_as_index=True)``, the index cast to
  ``str`` and mirrored into ``fid``), so every layer is written with its FID column set to the ids.
- Id columns are cast with ``astype(int)`` / ``str()`` by the devkit; a NULL turns an integer column into
  float and ids into ``"123.0"``, so id columns the devkit reads are written without NULLs. NULLs remain
  where real maps have them and no lookup reaches them (``baseline_paths.lane_fid`` on connector rows,
  descriptive columns whose meaning we cannot verify).
- Every layer is reprojected by the devkit to ``meta.projectedCoordSystem``; geometries are stored in that
  projected CRS (real maps store WGS84 lon/lat), which makes the reprojection an identity.
- Raster layers are never needed to open a map or to score. ``GPKGMapsDB.load_layer`` reads
  ``<layer>.npy.npz`` (its own raster cache, which the official map release also ships) before it would
  extract a raster table from the GeoPackage, so the ``drivable_area`` and ``intersection`` masks are
  written there, with the json's ``transform_matrix`` (physical -> pixel, precision = 1 / m[0][0]).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import shapely
from PIL import Image, ImageDraw

from harness.errors import MapError
from harness.maps import RoadMap

#: ``map_version`` argument of the devkit: the name of the json at the maps root.
NUPLAN_MAPS_VERSION = "nuplan-maps-v1.0"
#: The devkit's ``MAP_LOCATIONS`` with the versions of the official map release.
NUPLAN_MAP_LOCATIONS: Mapping[str, str] = MappingProxyType(
    {
        "sg-one-north": "9.17.1964",
        "us-ma-boston": "9.12.1817",
        "us-nv-las-vegas-strip": "9.15.1915",
        "us-pa-pittsburgh-hazelwood": "9.17.1937",
    }
)
#: Location names found in logs that NAVSIM maps onto a devkit location.
LOCATION_ALIASES: Mapping[str, str] = MappingProxyType({"las_vegas": "us-nv-las-vegas-strip"})
#: Marker in the ``meta`` table: maps carrying it may be overwritten, any other map is refused.
CREATOR = "lead-bench"
RASTER_LAYERS = ("drivable_area", "intersection")
MAX_RASTER_PIXELS = 400_000_000  # 400 MB per uint8 mask; a 2 km x 2 km world at 0.1 m

# Column kinds: "id" int64 (NULL allowed only through a None value), "i32" (GDAL MEDIUMINT), "f" float64
# (NaN/None -> NULL), "b" bool, "s" text (None -> NULL).
ColumnSpec = tuple[tuple[str, str], ...]
#: layer -> (geometry type or None, columns after the FID). Names and order follow the official maps.
# fmt: off
LAYER_SCHEMAS: Mapping[str, tuple[str | None, ColumnSpec]] = MappingProxyType(
    {
        "lanes_polygons": ("Polygon", (
            ("lane_group_fid", "id"), ("lane_fid", "id"), ("lane_index", "i32"), ("creator_id", "s"),
            ("name", "s"), ("road_type_fid", "id"), ("lane_type_fid", "id"), ("width", "i32"),
            ("left_offset", "f"), ("right_offset", "f"), ("min_speed", "f"), ("max_speed", "f"),
            ("stops", "i32"), ("left_boundary_fid", "id"), ("right_boundary_fid", "id"),
            ("speed_limit_mps", "f"), ("left_has_reflectors", "b"), ("right_has_reflectors", "b"),
            ("from_edge_fid", "id"), ("to_edge_fid", "id"))),
        "lane_groups_polygons": ("Polygon", (
            ("creator_id", "s"), ("left_boundary_fid", "id"), ("right_boundary_fid", "id"),
            ("from_edge_fid", "id"), ("to_edge_fid", "id"))),
        "lane_group_connectors": ("Polygon", (
            ("intersection_fid", "id"), ("from_lane_group_fid", "id"), ("to_lane_group_fid", "id"),
            ("creator_id", "s"), ("from_edge_fid", "id"), ("to_edge_fid", "id"),
            ("left_boundary_fid", "id"), ("right_boundary_fid", "id"))),
        "lane_connectors": ("LineString", (
            ("exit_lane_group_fid", "id"), ("exit_lane_fid", "id"), ("entry_lane_group_fid", "id"),
            ("lane_group_connector_fid", "id"), ("entry_lane_fid", "id"), ("intersection_fid", "id"),
            ("turn_type_fid", "id"), ("bulb_fids", "s"), ("traffic_light_stop_line_fids", "s"),
            ("overlap", "i32"), ("creator_id", "s"), ("reflector_side_fid", "id"),
            ("left_has_reflectors", "b"), ("right_has_reflectors", "b"), ("speed_limit_mps", "f"))),
        "baseline_paths": ("LineString", (
            ("path_type_fid", "id"), ("creator_id", "s"), ("lane_fid", "id"), ("lane_connector_fid", "id"),
            ("dubins_node_fids", "s"))),
        "gen_lane_connectors_scaled_width_polygons": ("Polygon", (
            ("baseline_path_fid", "id"), ("lane_connector_fid", "id"), ("from_edge_fid", "id"),
            ("to_edge_fid", "id"), ("left_boundary_fid", "id"), ("right_boundary_fid", "id"))),
        "boundaries": ("LineString", (
            ("boundary_segment_fids", "s"), ("has_reflectors", "b"), ("boundary_type_fid", "id"),
            ("creator_id", "s"))),
        "intersections": ("Polygon", (
            ("creator_id", "s"), ("intersection_type_fid", "id"), ("is_mini", "b"))),
        "stop_polygons": ("Polygon", (
            ("stop_polygon_type_fid", "id"), ("lane_group_fid", "id"), ("lane_fids", "s"),
            ("lane_connector_fids", "s"), ("traffic_light_fids", "s"), ("crosswalk_fids", "s"),
            ("precedence_area_fids", "s"), ("creator_id", "s"))),
        "crosswalks": ("Polygon", (
            ("intersection_fids", "s"), ("lane_fids", "s"), ("creator_id", "s"), ("is_marked", "b"))),
        "walkways": ("Polygon", (("creator_id", "s"),)),
        "carpark_areas": ("Polygon", (("heading", "f"), ("creator_id", "s"))),
        "road_segments": ("Polygon", (("lane_group_fids", "s"),)),
        "generic_drivable_areas": ("Polygon", (("creator_id", "s"),)),
        "meta": (None, (("key", "s"), ("value", "s"))),
    }
)
# fmt: on

Rows = list[tuple[int, Any, dict[str, Any]]]  # (fid, shapely geometry or None, column values)


def canonical_location(location: str) -> str:
    """Map a log/map location (or its legacy alias) onto one of the devkit's four locations.

    Raises:
        MapError: the location is not one the devkit knows.
    """
    loc = LOCATION_ALIASES.get(location, location)
    if loc not in NUPLAN_MAP_LOCATIONS:
        known = sorted(NUPLAN_MAP_LOCATIONS) + sorted(LOCATION_ALIASES)
        raise MapError(f"unknown nuPlan map location {location!r}; expected one of {known}")
    return loc


def maps_json_path(maps_root: Path) -> Path:
    return Path(maps_root) / f"{NUPLAN_MAPS_VERSION}.json"


def gpkg_path(maps_root: Path, location: str, version: str) -> Path:
    return Path(maps_root) / location / version / "map.gpkg"


def _ids(values: list[int] | tuple[int, ...]) -> str:
    # The devkit splits these on "," after removing spaces; '' means none.
    return ",".join(str(v) for v in values)


def _turn_type(xy: np.ndarray) -> int:
    """nuPlan turn type (``LaneConnectorType``: 0 straight, 1 left, 2 right, 3 u-turn) from the heading change."""
    d0, d1 = xy[1] - xy[0], xy[-1] - xy[-2]
    change = np.degrees(np.arctan2(d0[0] * d1[1] - d0[1] * d1[0], d0 @ d1))
    if abs(change) < 30.0:
        return 0
    if abs(change) > 150.0:
        return 3
    return 1 if change > 0 else 2


def _layer_rows(m: RoadMap) -> dict[str, Rows]:
    """Every vector layer's rows, in ascending id order (the order the devkit iterates them)."""
    lanes = sorted(m.lanes.values(), key=lambda o: o.id)
    lcs = sorted(m.lane_connectors.values(), key=lambda o: o.id)
    rbcs = sorted(m.roadblock_connectors.values(), key=lambda o: o.id)
    rbc_by_id = m.roadblock_connectors
    base = {"creator_id": CREATOR}
    rows: dict[str, Rows] = {name: [] for name in LAYER_SCHEMAS}

    for lane in lanes:
        rows["lanes_polygons"].append(
            (
                lane.id,
                lane.polygon,
                {
                    **base,
                    "lane_group_fid": lane.roadblock_id,
                    "lane_fid": lane.id,
                    "lane_index": lane.lane_index,
                    "name": f"lane_{lane.id}",
                    "road_type_fid": 0,
                    "lane_type_fid": 0,
                    "stops": 0,
                    "left_boundary_fid": lane.left_boundary_id,
                    "right_boundary_fid": lane.right_boundary_id,
                    "speed_limit_mps": lane.speed_limit_mps,
                    "left_has_reflectors": False,
                    "right_has_reflectors": False,
                },
            )
        )
    for rb in sorted(m.roadblocks.values(), key=lambda o: o.id):
        left, right = (m.lanes[rb.lane_ids[0]], m.lanes[rb.lane_ids[-1]]) if rb.lane_ids else (None, None)
        rows["lane_groups_polygons"].append(
            (
                rb.id,
                rb.polygon,
                {
                    **base,
                    "left_boundary_fid": left and left.left_boundary_id,
                    "right_boundary_fid": right and right.right_boundary_id,
                },
            )
        )
        rows["road_segments"].append(
            (len(rows["road_segments"]) + 1, rb.polygon, {"lane_group_fids": str(rb.id)})
        )
    for rbc in rbcs:
        first = m.lane_connectors[rbc.lane_connector_ids[0]] if rbc.lane_connector_ids else None
        last = m.lane_connectors[rbc.lane_connector_ids[-1]] if rbc.lane_connector_ids else None
        rows["lane_group_connectors"].append(
            (
                rbc.id,
                rbc.polygon,
                {
                    **base,
                    "intersection_fid": rbc.intersection_id,
                    "from_lane_group_fid": rbc.from_roadblock_id,
                    "to_lane_group_fid": rbc.to_roadblock_id,
                    "left_boundary_fid": first and first.left_boundary_id,
                    "right_boundary_fid": last and last.right_boundary_id,
                },
            )
        )
        if rbc.intersection_id is None:
            # Keeps the vector DRIVABLE_AREA (road_segments + intersections + generic + car parks) gap-free.
            rows["generic_drivable_areas"].append(
                (len(rows["generic_drivable_areas"]) + 1, rbc.polygon, base)
            )

    stop_users: dict[int, list[int]] = {}
    for lc in lcs:
        if lc.has_traffic_light and not lc.stop_line_ids:
            raise MapError(
                f"lane connector {lc.id} has a traffic light but no stop line; nuPlan encodes the "
                "traffic-light flag as a non-empty traffic_light_stop_line_fids"
            )
        for sl_id in lc.stop_line_ids:
            stop_users.setdefault(sl_id, []).append(lc.id)
        parent = rbc_by_id.get(lc.roadblock_connector_id)
        line = shapely.LineString(lc.baseline_xy)
        bp_fid = len(rows["baseline_paths"]) + 1
        rows["lane_connectors"].append(
            (
                lc.id,
                line,
                {
                    **base,
                    "exit_lane_group_fid": m.lanes[lc.exit_lane_id].roadblock_id,
                    "exit_lane_fid": lc.exit_lane_id,
                    "entry_lane_group_fid": m.lanes[lc.entry_lane_id].roadblock_id,
                    "lane_group_connector_fid": lc.roadblock_connector_id,
                    "entry_lane_fid": lc.entry_lane_id,
                    "intersection_fid": parent.intersection_id if parent else None,
                    "turn_type_fid": _turn_type(lc.baseline_xy),
                    "bulb_fids": "",
                    "traffic_light_stop_line_fids": _ids(lc.stop_line_ids) if lc.has_traffic_light else "",
                    "left_has_reflectors": False,
                    "right_has_reflectors": False,
                    "speed_limit_mps": lc.speed_limit_mps,
                },
            )
        )
        rows["baseline_paths"].append((bp_fid, line, {**base, "lane_connector_fid": lc.id}))
        rows["gen_lane_connectors_scaled_width_polygons"].append(
            (
                lc.id,
                lc.polygon,
                {
                    "baseline_path_fid": bp_fid,
                    "lane_connector_fid": lc.id,
                    "left_boundary_fid": lc.left_boundary_id,
                    "right_boundary_fid": lc.right_boundary_id,
                },
            )
        )
    for lane in lanes:
        rows["baseline_paths"].append(
            (
                len(rows["baseline_paths"]) + 1,
                shapely.LineString(lane.baseline_xy),
                {**base, "lane_fid": lane.id},
            )
        )

    for b in sorted(m.boundaries.values(), key=lambda o: o.id):
        rows["boundaries"].append((b.id, shapely.LineString(b.line_xy), {**base, "has_reflectors": False}))
    for name, layer, extra in (
        ("intersections", m.intersections, {"is_mini": False}),
        ("crosswalks", m.crosswalks, {"is_marked": True, "intersection_fids": "", "lane_fids": ""}),
        ("walkways", m.walkways, {}),
        ("carpark_areas", m.carparks, {}),
    ):
        for area in sorted(layer.values(), key=lambda o: o.id):
            rows[name].append((area.id, area.polygon, {**base, **extra}))
    for sl in sorted(m.stop_lines.values(), key=lambda o: o.id):
        rows["stop_polygons"].append(
            (
                sl.id,
                sl.polygon,
                {
                    **base,
                    "stop_polygon_type_fid": int(sl.type),
                    "lane_fids": "",
                    "lane_connector_fids": _ids(sorted(stop_users.get(sl.id, []))),
                    "traffic_light_fids": "",
                    "crosswalk_fids": "",
                    "precedence_area_fids": "",
                },
            )
        )
    crs = m.projected_crs
    rows["meta"] = [
        (1, None, {"key": "projectedCoordSystem", "value": crs}),
        (2, None, {"key": "geographicCoordSystem", "value": "EPSG:4326"}),
        (3, None, {"key": "creator", "value": CREATOR}),
    ]
    return rows


_DTYPES = {"id": np.int64, "i32": np.int32, "f": np.float64, "b": np.bool_, "s": object}


def _write_layer(path: Path, name: str, rows: Rows, crs: str, append: bool) -> None:
    geom_type, columns = LAYER_SCHEMAS[name]
    fields = ["fid"] + [c for c, _ in columns]
    data = [np.array([fid for fid, _, _ in rows], dtype=np.int64)]
    masks: list[np.ndarray | None] = [None]
    for col, kind in columns:
        values = [vals.get(col) for _, _, vals in rows]
        null = np.array([v is None for v in values], dtype=bool)
        if kind == "f":
            data.append(np.array([np.nan if v is None else v for v in values], dtype=np.float64))
        elif kind == "s":
            data.append(np.array(values, dtype=object))
        else:
            fill = False if kind == "b" else 0
            data.append(np.array([fill if v is None else v for v in values], dtype=_DTYPES[kind]))
        masks.append(null if kind in ("id", "i32") and null.any() else None)
    geometry = None
    if geom_type is not None:
        geoms = np.array([g for _, g, _ in rows], dtype=object)
        bad = [fid for fid, g, _ in rows if g is None or g.geom_type != geom_type]
        if bad:
            raise MapError(f"layer {name}: expected {geom_type} geometries, ids {bad[:5]} are not", path=path)
        geometry = shapely.to_wkb(geoms) if len(geoms) else np.empty(0, dtype=object)
    field_mask = masks if any(m is not None for m in masks) else None
    if field_mask is not None:
        field_mask = [np.zeros(len(rows), dtype=bool) if m is None else m for m in field_mask]
    import pyogrio.raw  # GDAL: imported when a map is written (~0.4 s to load)

    pyogrio.raw.write(
        str(path),
        geometry,
        data,
        fields,
        field_mask=field_mask,
        layer=name,
        driver="GPKG",
        geometry_type=geom_type,
        crs=crs if geom_type else None,
        append=append,
        promote_to_multi=False,
        # A field named like the FID column sets the FIDs: object ids are FIDs in nuPlan maps.
        layer_options={"FID": "fid"},
    )


def _raster_masks(m: RoadMap, resolution_m: float) -> tuple[dict[str, np.ndarray], list[list[float]]]:
    """Binary masks (uint8, 0/1) and the physical -> pixel matrix shared by all raster layers."""
    drivable = [rb.polygon for rb in m.roadblocks.values()]
    drivable += [c.polygon for c in m.roadblock_connectors.values() if c.intersection_id is None]
    drivable += [a.polygon for a in (*m.intersections.values(), *m.carparks.values())]
    intersections = [a.polygon for a in m.intersections.values()]
    bounds = shapely.total_bounds(np.array(drivable, dtype=object)) if drivable else np.zeros(4)
    margin = 10.0
    x0, y_top = np.floor(bounds[0] - margin), np.ceil(bounds[3] + margin)
    width = int(np.ceil((bounds[2] + margin - x0) / resolution_m))
    height = int(np.ceil((y_top - (bounds[1] - margin)) / resolution_m))
    if width * height > MAX_RASTER_PIXELS:
        raise MapError(
            f"raster masks of {width} x {height} pixels at {resolution_m} m/pixel exceed "
            f"{MAX_RASTER_PIXELS:.0e} pixels; choose a coarser raster_resolution_m"
        )
    transform = [
        [1.0 / resolution_m, 0.0, 0.0, -x0 / resolution_m],
        [0.0, -1.0 / resolution_m, 0.0, y_top / resolution_m],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]

    def to_px(xy: np.ndarray) -> list[tuple[float, float]]:
        return [((x - x0) / resolution_m, (y_top - y) / resolution_m) for x, y in xy]

    def rasterise(polygons: list[Any]) -> np.ndarray:
        # PIL fills in C; shapely point-in-polygon per pixel would be orders of magnitude slower. Holes are
        # cleared after their own polygon is filled (the generated maps have none).
        img = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(img)
        for poly in polygons:
            for part in getattr(poly, "geoms", [poly]):
                draw.polygon(to_px(np.asarray(part.exterior.coords)), fill=1)
                for hole in part.interiors:
                    draw.polygon(to_px(np.asarray(hole.coords)), fill=0)
        return np.asarray(img, dtype=np.uint8)

    return dict(zip(RASTER_LAYERS, (rasterise(drivable), rasterise(intersections)))), transform


def _refuse_foreign(path: Path) -> None:
    """Refuse to overwrite a map lead-bench did not write (e.g. a real nuPlan map)."""
    if not path.exists():
        return
    import pyogrio.raw

    try:
        _, _, _, (keys, values) = pyogrio.raw.read(str(path), layer="meta", read_geometry=False)
        ours = any(k == "creator" and v == CREATOR for k, v in zip(keys, values))
    except Exception:  # noqa: BLE001 - an unreadable file is not ours either
        ours = False
    if not ours:
        raise MapError("refusing to overwrite a map that lead-bench did not write", path=path)


def write_nuplan_maps(road_map: RoadMap, maps_root: Path, *, raster_resolution_m: float = 0.1) -> Path:
    """Write ``road_map`` as a nuPlan map package under ``maps_root`` (all four devkit locations).

    The map is written under its own location (version ``road_map.version``, or the official one if
    empty) and copied under the other three locations (official versions), then moved into place file by
    file, the json last, so a reader never sees a half-written package.

    Args:
        road_map: the map; ``location`` must be a devkit location or alias.
        maps_root: the ``NUPLAN_MAPS_ROOT`` to write; must be writable (the devkit writes lock files there).
        raster_resolution_m: metres per pixel of the raster masks (nuPlan's are 0.1).

    Returns:
        Path of the GeoPackage of ``road_map.location``.

    Raises:
        MapError: unknown location, invalid map content, or an existing map that lead-bench did not write.
    """
    maps_root = Path(maps_root)
    own = canonical_location(road_map.location)
    versions = {loc: (road_map.version or v) if loc == own else v for loc, v in NUPLAN_MAP_LOCATIONS.items()}
    json_path = maps_json_path(maps_root)
    for loc, version in versions.items():
        _refuse_foreign(gpkg_path(maps_root, loc, version))
    if json_path.exists():
        try:
            existing = json.loads(json_path.read_text())
            named = [gpkg_path(maps_root, loc, str(e["version"])) for loc, e in existing.items()]
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise MapError(f"refusing to overwrite an unreadable maps json ({err})", path=json_path) from err
        for path in named:
            _refuse_foreign(path)

    maps_root.mkdir(parents=True, exist_ok=True)
    staging = maps_root / f".lead-bench-staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        master = staging / "map.gpkg"
        for i, (name, rows) in enumerate(_layer_rows(road_map).items()):
            _write_layer(master, name, rows, road_map.projected_crs, append=i > 0)
        masks, transform = _raster_masks(road_map, raster_resolution_m)
        for name, mask in masks.items():
            np.savez_compressed(staging / f"{name}.npy.npz", data=mask)
        layers = {
            name: {"shape": list(mask.shape), "transform_matrix": transform} for name, mask in masks.items()
        }
        (staging / "maps.json").write_text(
            json.dumps(
                {loc: {"version": version, "layers": layers} for loc, version in versions.items()}, indent=2
            )
        )

        moves: list[tuple[Path, Path]] = []
        for loc, version in versions.items():
            target_dir = maps_root / loc / version
            for fname in ["map.gpkg", *(f"{name}.npy.npz" for name in masks)]:
                tmp = staging / loc / fname
                tmp.parent.mkdir(exist_ok=True)
                shutil.copyfile(staging / fname, tmp)
                moves.append((tmp, target_dir / fname))
        for src, dst in moves:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        os.replace(staging / "maps.json", json_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return gpkg_path(maps_root, own, versions[own])
