"""Read a nuPlan map package (the official release or one written by ``map_writer``) into a ``RoadMap``.

Reads exactly what nuplan-devkit v1.2 reads (``gpkg_mapsdb.py``, ``nuplan_map/*.py``), with SQLite (the
GeoPackage's tables in one connection, geometries from their WKB) and shapely; a package holding anything the
direct reader does not handle (non-EPSG CRS, extended or empty geometry encodings, errors) is read with
pyogrio (GDAL), which gives the same map and words the errors:

- ids are GeoPackage FIDs; lanes come from ``lanes_polygons``, their baselines from ``baseline_paths``
  (``lane_fid``), lane connectors from ``lane_connectors`` with their baselines from ``baseline_paths``
  (``lane_connector_fid``) and their polygons and boundaries from
  ``gen_lane_connectors_scaled_width_polygons``;
- a lane connector has a traffic light iff ``traffic_light_stop_line_fids`` is non-empty
  (``NuPlanLaneConnector.has_traffic_lights``); its stop lines are those ids, followed by the other stop
  polygons that list the connector in ``stop_polygons.lane_connector_fids``;
- every layer is reprojected to the ``meta`` table's ``projectedCoordSystem``. The official maps store
  WGS84 lon/lat and a UTM zone there; that case is handled by a built-in UTM projection (Krüger series,
  sub-millimetre), so pyproj is not a dependency. Any other CRS pair uses pyproj if it is installed.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from adapters.navsim.map_writer import canonical_location, gpkg_path, maps_json_path
from harness.errors import MapError
from harness.maps import (
    Area,
    Boundary,
    Lane,
    LaneConnector,
    Roadblock,
    RoadblockConnector,
    RoadMap,
    StopLine,
    StopLineType,
)

#: layer -> columns read (besides the FID and geometry). A missing one raises ``MapError``.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "lanes_polygons": (
        "lane_group_fid",
        "lane_index",
        "left_boundary_fid",
        "right_boundary_fid",
        "speed_limit_mps",
    ),
    "lane_groups_polygons": (),
    "lane_group_connectors": ("from_lane_group_fid", "to_lane_group_fid", "intersection_fid"),
    "lane_connectors": (
        "exit_lane_fid",
        "entry_lane_fid",
        "lane_group_connector_fid",
        "speed_limit_mps",
        "traffic_light_stop_line_fids",
    ),
    "baseline_paths": ("lane_fid", "lane_connector_fid"),
    "gen_lane_connectors_scaled_width_polygons": (
        "lane_connector_fid",
        "left_boundary_fid",
        "right_boundary_fid",
    ),
    "boundaries": (),
    "intersections": (),
    "stop_polygons": ("stop_polygon_type_fid",),
    "crosswalks": (),
    "walkways": (),
    "carpark_areas": (),
}


class _Layer:
    """One vector layer: FIDs, shapely geometries (in the projected CRS) and the requested columns."""

    def __init__(
        self, path: Path, name: str, fids: np.ndarray, geoms: np.ndarray, columns: dict[str, np.ndarray]
    ) -> None:
        self.path, self.name = path, name
        self.fids = fids.astype(np.int64)
        self.geoms = geoms
        self.columns = columns

    def required(self, column: str) -> list[int]:
        """An id column the devkit converts with ``int()``/``str()``: NULLs are an error."""
        values = self.ids(column)
        nulls = [int(f) for f, v in zip(self.fids, values) if v is None]
        if nulls:
            raise MapError(
                f"layer {self.name!r}: {column} is NULL for fids {nulls[:5]}; the devkit needs integer ids there",
                path=self.path,
            )
        return [v for v in values if v is not None]

    def ids(self, name: str) -> list[int | None]:
        """An id column as Python ints, NULL (NaN in a float-promoted column) as None."""
        out: list[int | None] = []
        for v in self.columns[name]:
            out.append(None if v is None or (isinstance(v, float) and np.isnan(v)) else int(v))
        return out

    def floats(self, name: str) -> list[float | None]:
        return [None if v is None or np.isnan(v) else float(v) for v in self.columns[name].astype(np.float64)]


def _split_ids(value: Any) -> list[int]:
    # Same parsing as NuPlanLaneConnector.stop_lines: drop spaces, split on ",", skip empties.
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [int(float(p)) for p in str(value).replace(" ", "").split(",") if p]


# --- CRS ----------------------------------------------------------------------------------------------

_WGS84_A = 6378137.0
_WGS84_F = 1.0 / 298.257223563


def _utm_forward(zone: int, south: bool) -> Callable[[np.ndarray], np.ndarray]:
    """WGS84 (lon, lat degrees) -> UTM (easting, northing metres), Krüger's series to 6th order in n."""
    n = _WGS84_F / (2.0 - _WGS84_F)
    e = np.sqrt(_WGS84_F * (2.0 - _WGS84_F))
    big_a = _WGS84_A / (1.0 + n) * (1.0 + n**2 / 4.0 + n**4 / 64.0 + n**6 / 256.0)
    alpha = np.array(
        [
            n / 2 - 2 * n**2 / 3 + 5 * n**3 / 16 + 41 * n**4 / 180 - 127 * n**5 / 288 + 7891 * n**6 / 37800,
            13 * n**2 / 48 - 3 * n**3 / 5 + 557 * n**4 / 1440 + 281 * n**5 / 630 - 1983433 * n**6 / 1935360,
            61 * n**3 / 240 - 103 * n**4 / 140 + 15061 * n**5 / 26880 + 167603 * n**6 / 181440,
            49561 * n**4 / 161280 - 179 * n**5 / 168 + 6601661 * n**6 / 7257600,
            34729 * n**5 / 80640 - 3418889 * n**6 / 1995840,
            212378941 * n**6 / 319334400,
        ]
    )
    lon0 = np.radians(zone * 6.0 - 183.0)
    k0, false_e, false_n = 0.9996, 500000.0, 10000000.0 if south else 0.0
    j = np.arange(1, 7)[:, None]

    def forward(lonlat: np.ndarray) -> np.ndarray:
        lam = np.radians(lonlat[:, 0]) - lon0
        phi = np.radians(lonlat[:, 1])
        t = np.sinh(np.arctanh(np.sin(phi)) - e * np.arctanh(e * np.sin(phi)))
        xi = np.arctan2(t, np.cos(lam))
        eta = np.arctanh(np.sin(lam) / np.sqrt(1.0 + t * t))
        east = eta + (alpha[:, None] * np.cos(2 * j * xi) * np.sinh(2 * j * eta)).sum(axis=0)
        north = xi + (alpha[:, None] * np.sin(2 * j * xi) * np.cosh(2 * j * eta)).sum(axis=0)
        return np.stack([false_e + k0 * big_a * east, false_n + k0 * big_a * north], axis=-1)

    return forward


def _epsg(crs: str | None) -> int | None:
    match = re.fullmatch(r"\s*epsg:(\d+)\s*", crs or "", flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def _reprojector(
    src: str | None, dst: str, path: Path, layer: str
) -> Callable[[np.ndarray], np.ndarray] | None:
    """None when no reprojection is needed, else a vectorised (N, 2) -> (N, 2) coordinate transform."""
    src_code, dst_code = _epsg(src), _epsg(dst)
    if src is None or (src_code is not None and src_code == dst_code) or src == dst:
        return None  # geopandas' to_crs leaves matching CRSs alone; a layer without a CRS cannot be moved
    if (
        src_code == 4326
        and dst_code is not None
        and (32601 <= dst_code <= 32660 or 32701 <= dst_code <= 32760)
    ):
        return _utm_forward(dst_code % 100, south=dst_code > 32700)
    try:
        import pyproj  # optional: only for CRS pairs the built-in projection does not cover
    except ImportError as err:
        raise MapError(
            f"layer {layer} is in {src} and must be reprojected to {dst}; install pyproj for this CRS pair",
            path=path,
        ) from err
    transformer = pyproj.Transformer.from_crs(src, dst, always_xy=True)
    return lambda xy: np.stack(transformer.transform(xy[:, 0], xy[:, 1]), axis=-1)


# --- reading --------------------------------------------------------------------------------------------


#: Columns read when present (real maps have them; older or third-party maps may not).
OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {"stop_polygons": ("lane_connector_fids",)}


def _read_layer(path: Path, name: str, required: Sequence[str], crs: str, layers: set[str]) -> _Layer:
    import pyogrio.raw

    if name not in layers:
        raise MapError(
            f"missing layer {name!r}; expected nuPlan's vector layers {sorted(REQUIRED_COLUMNS)}", path=path
        )
    try:
        # One open of the layer: pyogrio skips requested columns the layer lacks, and its meta names the
        # columns it read and the layer's CRS (what read_info would report, for a second open).
        columns = list(required) + list(OPTIONAL_COLUMNS.get(name, ()))
        meta, fids, wkb, values = pyogrio.raw.read(str(path), layer=name, columns=columns, return_fids=True)
    except Exception as err:  # noqa: BLE001 - GDAL raises several types for unreadable files
        raise MapError(f"cannot read layer {name!r}: {err}", path=path) from err
    present = {str(c) for c in meta["fields"]}
    missing = [c for c in required if c not in present]
    if missing:
        raise MapError(f"layer {name!r} lacks columns {missing}; expected {list(required)}", path=path)
    geoms = shapely.from_wkb(wkb) if wkb is not None else np.full(len(fids), None, dtype=object)
    reproject = _reprojector(meta["crs"], crs, path, name)
    if reproject is not None and len(geoms):
        geoms = shapely.transform(geoms, reproject)
    order = np.argsort(fids, kind="stable")  # FID order is the order the devkit iterates objects in
    # pyogrio returns the columns in the layer's order, not in the requested one.
    return _Layer(
        path, name, fids[order], geoms[order], {str(c): v[order] for c, v in zip(meta["fields"], values)}
    )


def _meta_crs(path: Path) -> str:
    import pyogrio.raw

    try:
        _, _, _, values = pyogrio.raw.read(
            str(path), layer="meta", columns=["key", "value"], read_geometry=False
        )
    except Exception as err:  # noqa: BLE001
        raise MapError(f"cannot read the 'meta' table with columns key, value: {err}", path=path) from err
    for key, value in zip(*values):
        if key == "projectedCoordSystem" and value:
            code = _epsg(value)
            return f"EPSG:{code}" if code is not None else str(value)
    raise MapError("the 'meta' table has no projectedCoordSystem", path=path)


def _read_gdal(path: Path) -> tuple[str, dict[str, _Layer]]:
    """The meta CRS and the ``REQUIRED_COLUMNS`` layers, read with pyogrio (GDAL), one open per layer.
    pyogrio is imported here, for the packages that need it: loading GDAL costs a process ~0.4 s (and makes
    every later scan of the loaded libraries, e.g. threadpoolctl's, slower)."""
    import pyogrio
    try:
        layers = {str(n) for n, _ in pyogrio.list_layers(str(path))}
    except Exception as err:  # noqa: BLE001
        raise MapError(f"not a readable GeoPackage: {err}", path=path) from err
    if "meta" not in layers:
        raise MapError("missing table 'meta' (key, value) with projectedCoordSystem", path=path)
    crs = _meta_crs(path)
    return crs, {name: _read_layer(path, name, cols, crs, layers) for name, cols in REQUIRED_COLUMNS.items()}


def _open(maps_root: Path, location: str, version: str | None) -> tuple[str, str, Path]:
    try:
        loc = canonical_location(location)
    except MapError as err:
        raise MapError(str(err), path=maps_root) from err
    json_path = maps_json_path(maps_root)
    if not json_path.is_file():
        raise MapError("missing nuPlan maps json (expected {location: {version, layers}})", path=json_path)
    try:
        entry = json.loads(json_path.read_text())[loc]
        resolved = version or str(entry["version"])
    except (ValueError, KeyError, TypeError) as err:
        raise MapError(
            f"maps json has no valid entry for {loc!r} with a 'version' ({err!r})", path=json_path
        ) from err
    path = gpkg_path(maps_root, loc, resolved)
    if not path.is_file():
        raise MapError(f"missing GeoPackage for {loc} version {resolved}", path=path)
    return loc, resolved, path


# --- direct GeoPackage reading (SQLite) ------------------------------------------------------------------

#: Bytes of the envelope after a GeoPackageBinary header's 8 fixed bytes, by the flags' envelope indicator.
_GPKG_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


class _NeedsGdal(Exception):
    """The GeoPackage holds something the direct reader leaves to GDAL (an error, an unusual CRS or geometry
    encoding): the layers are then read with pyogrio, which also words any error."""


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _gpkg_geometries(blobs: Sequence[bytes | None]) -> np.ndarray:
    """Shapely geometries of GeoPackageBinary blobs (standard encoding, non-empty; else ``_NeedsGdal``): the
    ISO WKB after the header and envelope, as GDAL reads it."""
    wkb: list[bytes | None] = []
    for blob in blobs:
        if blob is None:
            wkb.append(None)
            continue
        if not isinstance(blob, bytes) or len(blob) < 8 or blob[:2] != b"GP" or blob[2] != 0:
            raise _NeedsGdal("not a version-0 GeoPackageBinary geometry")
        flags = blob[3]
        envelope = _GPKG_ENVELOPE_BYTES.get((flags >> 1) & 7)
        if envelope is None or flags & 0x30:  # bad envelope code, empty geometry, or the extended encoding
            raise _NeedsGdal("GeoPackageBinary geometry GDAL should decode")
        wkb.append(blob[8 + envelope :])
    try:
        return shapely.from_wkb(np.array(wkb, dtype=object))
    except Exception as err:  # noqa: BLE001 - shapely raises GEOSException or ValueError
        raise _NeedsGdal(f"WKB: {err}") from err


def _read_gpkg_direct(path: Path) -> tuple[str, dict[str, _Layer]]:
    """The meta CRS and the ``REQUIRED_COLUMNS`` layers of a GeoPackage, read with SQLite in one connection.

    GDAL opens the file again for each layer and inspects its schema each time (~5 ms a layer, ~65 ms a map
    however small); SQLite reads the same tables in one pass. It gives what ``_read_layer`` gives: FIDs (the
    integer primary key), geometries from the GeoPackageBinary blobs' WKB, the columns' values, sorted by FID,
    reprojected from the layer's ``EPSG`` CRS. Anything else (a missing layer, column or CRS, a non-EPSG CRS,
    an unreadable file, an empty or extended-encoding geometry) raises ``_NeedsGdal``.
    """
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as err:
        raise _NeedsGdal(str(err)) from err
    try:
        contents = {str(t) for (t,) in con.execute("SELECT table_name FROM gpkg_contents")}
        if "meta" not in contents or any(name not in contents for name in REQUIRED_COLUMNS):
            raise _NeedsGdal("missing layer")
        crs = None
        for key, value in con.execute("SELECT key, value FROM meta ORDER BY rowid"):
            if key == "projectedCoordSystem" and value:
                code = _epsg(value)
                crs = f"EPSG:{code}" if code is not None else str(value)
                break
        if crs is None:
            raise _NeedsGdal("no projectedCoordSystem")
        geometry_columns = {
            str(t): (str(c), s)
            for t, c, s in con.execute("SELECT table_name, column_name, srs_id FROM gpkg_geometry_columns")
        }
        srs = {
            s: f"EPSG:{int(c)}"
            for s, org, c in con.execute(
                "SELECT srs_id, organization, organization_coordsys_id FROM gpkg_spatial_ref_sys"
            )
            if isinstance(org, str) and org.upper() == "EPSG" and isinstance(c, int) and c > 0
        }
        layers: dict[str, _Layer] = {}
        for name, required in REQUIRED_COLUMNS.items():
            if name not in geometry_columns or geometry_columns[name][1] not in srs:
                raise _NeedsGdal(f"layer {name}: no geometry column with an EPSG CRS")
            geom_col, srs_id = geometry_columns[name]
            info = con.execute(f"PRAGMA table_info({_quoted(name)})").fetchall()
            keys = [str(r[1]) for r in info if r[5]]
            if len(keys) != 1 or str([r[2] for r in info if r[5]][0]).upper() != "INTEGER":
                raise _NeedsGdal(f"layer {name}: no integer primary key")
            present = [str(r[1]) for r in info]
            if any(c not in present for c in required):
                raise _NeedsGdal(f"layer {name}: missing column")
            # Columns in the layer's order, as pyogrio returns them.
            wanted = set(required) | set(OPTIONAL_COLUMNS.get(name, ()))
            columns = [c for c in present if c in wanted and c not in (keys[0], geom_col)]
            select = ", ".join(_quoted(c) for c in (keys[0], geom_col, *columns))
            rows = con.execute(f"SELECT {select} FROM {_quoted(name)} ORDER BY {_quoted(keys[0])}").fetchall()
            fids = np.array([r[0] for r in rows], dtype=np.int64)
            geoms = _gpkg_geometries([r[1] for r in rows])
            reproject = _reprojector(srs[srs_id], crs, path, name)
            if reproject is not None and len(geoms):
                geoms = shapely.transform(geoms, reproject)
            values = {c: np.array([r[2 + j] for r in rows], dtype=object) for j, c in enumerate(columns)}
            layers[name] = _Layer(path, name, fids, geoms, values)
        return crs, layers
    except sqlite3.Error as err:
        raise _NeedsGdal(str(err)) from err
    finally:
        con.close()


def read_nuplan_map(maps_root: Path, location: str, version: str | None = None) -> RoadMap:
    """Read the map of ``location`` from a nuPlan maps root.

    Args:
        maps_root: directory holding ``nuplan-maps-v1.0.json`` and ``<location>/<version>/map.gpkg``.
        location: a devkit location, or the legacy alias ``las_vegas``.
        version: map version; default: the one the json names.

    Returns:
        The map in the ``meta`` table's projected CRS (metres).

    Raises:
        MapError: unknown location, missing json or GeoPackage, unreadable file, missing layer or column,
            or inconsistent content (e.g. a lane without a baseline path); the message names the path.
    """
    loc, resolved, path = _open(Path(maps_root), location, version)
    try:
        crs, d = _read_gpkg_direct(path)
    except _NeedsGdal:
        crs, d = _read_gdal(path)

    def line(geom: Any, what: str) -> np.ndarray:
        xy = shapely.get_coordinates(geom)
        if len(xy) < 2:
            raise MapError(f"{what}: expected a polyline with at least two vertices", path=path)
        return xy

    bp = d["baseline_paths"]
    lane_baseline = {i: g for i, g in zip(bp.ids("lane_fid"), bp.geoms) if i is not None}
    lc_baseline = {i: g for i, g in zip(bp.ids("lane_connector_fid"), bp.geoms) if i is not None}
    lcp = d["gen_lane_connectors_scaled_width_polygons"]
    lc_poly = {
        i: (g, lb, rb)
        for i, g, lb, rb in zip(
            lcp.required("lane_connector_fid"),
            lcp.geoms,
            lcp.required("left_boundary_fid"),
            lcp.required("right_boundary_fid"),
        )
    }
    sp = d["stop_polygons"]
    stop_users: dict[int, list[int]] = {}  # lane connector -> stop polygons that list it
    for sl_id, value in zip(sp.fids, sp.columns.get("lane_connector_fids", [])):
        for lc_id in _split_ids(value):
            stop_users.setdefault(lc_id, []).append(int(sl_id))

    try:
        lp = d["lanes_polygons"]
        lanes: dict[int, Lane] = {}
        for fid, geom, rb, idx, lb, rbd, speed in zip(
            lp.fids,
            lp.geoms,
            lp.required("lane_group_fid"),
            lp.required("lane_index"),
            lp.required("left_boundary_fid"),
            lp.required("right_boundary_fid"),
            lp.floats("speed_limit_mps"),
        ):
            if int(fid) not in lane_baseline:
                raise MapError(f"lane {fid} has no baseline path (baseline_paths.lane_fid)", path=path)
            lanes[int(fid)] = Lane(
                int(fid), rb, idx, line(lane_baseline[int(fid)], f"lane {fid}"), geom, lb, rbd, speed
            )
        lc = d["lane_connectors"]
        connectors: dict[int, LaneConnector] = {}
        for fid, exit_id, entry_id, rbc, speed, tl in zip(
            lc.fids,
            lc.required("exit_lane_fid"),
            lc.required("entry_lane_fid"),
            lc.required("lane_group_connector_fid"),
            lc.floats("speed_limit_mps"),
            lc.columns["traffic_light_stop_line_fids"],
        ):
            i = int(fid)
            if i not in lc_baseline or i not in lc_poly:
                raise MapError(
                    f"lane connector {i} lacks a baseline path or a gen_lane_connectors_scaled_width_polygons "
                    "row",
                    path=path,
                )
            tl_ids = _split_ids(tl)
            others = [s for s in sorted(stop_users.get(i, [])) if s not in tl_ids]
            poly, lb, rbd = lc_poly[i]
            connectors[i] = LaneConnector(
                i,
                rbc,
                exit_id,
                entry_id,
                line(lc_baseline[i], f"lane connector {i}"),
                poly,
                lb,
                rbd,
                speed,
                tuple(tl_ids + others),
                has_traffic_light=bool(tl_ids),
            )
        lanes_of: dict[int, list[Lane]] = {}
        for lane in lanes.values():
            lanes_of.setdefault(lane.roadblock_id, []).append(lane)
        rbs = d["lane_groups_polygons"]
        roadblocks = {
            int(f): Roadblock(
                int(f),
                g,
                tuple(
                    ln.id for ln in sorted(lanes_of.get(int(f), []), key=lambda ln: (ln.lane_index, ln.id))
                ),
            )
            for f, g in zip(rbs.fids, rbs.geoms)
        }
        lcs_of: dict[int, list[int]] = {}
        for c in connectors.values():
            lcs_of.setdefault(c.roadblock_connector_id, []).append(c.id)
        rc = d["lane_group_connectors"]
        roadblock_connectors = {
            int(f): RoadblockConnector(int(f), g, fr, to, tuple(sorted(lcs_of.get(int(f), []))), inter)
            for f, g, fr, to, inter in zip(
                rc.fids,
                rc.geoms,
                rc.required("from_lane_group_fid"),
                rc.required("to_lane_group_fid"),
                rc.ids("intersection_fid"),
            )
        }
        bd = d["boundaries"]
        boundaries = {int(f): Boundary(int(f), line(g, f"boundary {f}")) for f, g in zip(bd.fids, bd.geoms)}

        def areas(name: str) -> dict[int, Area]:
            return {int(f): Area(int(f), g) for f, g in zip(d[name].fids, d[name].geoms)}

        stop_lines = {
            int(f): StopLine(int(f), g, StopLineType(t))
            for f, g, t in zip(sp.fids, sp.geoms, sp.required("stop_polygon_type_fid"))
        }
        return RoadMap(
            location=loc,
            version=resolved,
            lanes=lanes,
            lane_connectors=connectors,
            roadblocks=roadblocks,
            roadblock_connectors=roadblock_connectors,
            boundaries=boundaries,
            intersections=areas("intersections"),
            stop_lines=stop_lines,
            crosswalks=areas("crosswalks"),
            walkways=areas("walkways"),
            carparks=areas("carpark_areas"),
            projected_crs=crs,
        )
    except (ValueError, TypeError) as err:  # dataclass validation (e.g. a connector to an unknown lane)
        raise MapError(f"inconsistent map content: {err}", path=path) from err
