"""Sensor rendering for the embedded world: pinhole cameras that draw the road and boxes, a ray-cast LiDAR.

:class:`SceneRenderer` is the entry point. In ``__init__`` it rasterises the map once into a
:class:`GroundTexture` (a material id per texel, global frame) and precomputes, per camera, the ground point
of every pixel below the horizon and, per LiDAR scanner, every ray (the sensors are fixed on the ego and the
ground is the plane z = 0, so all of that is constant). Per frame it only moves those points into the global
frame, looks up materials, and tests the frame's boxes (see ``render_camera`` and ``render_lidar``).

Frames: ``ego_pose`` is the global (x, y, heading) of the rear axle; the world's ego frame has its origin on
the ground under the rear axle (x forward, y left, z up). Cameras sit at
``ego_from_lidar @ lidar_from_camera``; LiDAR points come back in the lidar frame, as OpenScene stores them.
"""

from __future__ import annotations

import enum
import weakref
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely
from PIL import Image, ImageDraw

from harness.geometry import normalize_angle, se2_transform_points
from harness.maps import RoadMap
from harness.world.model import ObjectStates
from harness.world.render_camera import CameraRenderer, EgoBoxes
from harness.world.render_lidar import LidarCaster
from harness.world.rig import CameraSpec, LidarSpec

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


class Material(enum.IntEnum):
    """What a ground texel is made of; indexes the colour and intensity tables."""

    GRASS = 0
    ROAD = 1
    CARPARK = 2
    WALKWAY = 3
    MARKING_WHITE = 4
    MARKING_YELLOW = 5


#: RGB of each material (index = Material value).
MATERIAL_COLORS = np.array(
    [(84, 116, 58), (88, 89, 94), (104, 104, 108), (168, 163, 152), (228, 228, 222), (222, 180, 42)], dtype=np.uint8
)
#: LiDAR reflectivity of each material on nuPlan's 0-255 intensity scale (paint is retro-reflective).
MATERIAL_INTENSITIES = np.array([28.0, 10.0, 14.0, 32.0, 110.0, 95.0], dtype=np.float32)

#: Box colour per category; vehicles pick one of :data:`VEHICLE_PAINTS` by track token.
CATEGORY_COLORS: dict[str, tuple[int, int, int]] = {
    "pedestrian": (70, 60, 150),
    "bicycle": (230, 120, 30),
    "traffic_cone": (255, 105, 0),
    "barrier": (215, 215, 200),
    "czone_sign": (255, 150, 0),
    "generic_object": (120, 100, 80),
}
VEHICLE_PAINTS = ((190, 30, 30), (30, 60, 160), (225, 225, 225), (35, 35, 38), (150, 152, 158), (25, 110, 60),
                  (225, 195, 45))
#: LiDAR intensity per category (0-255).
CATEGORY_INTENSITIES: dict[str, float] = {
    "vehicle": 40.0, "pedestrian": 22.0, "bicycle": 30.0, "traffic_cone": 140.0, "barrier": 70.0,
    "czone_sign": 160.0, "generic_object": 30.0,
}

_LANE_LINE_WIDTH_M = 0.15
_DASH_ON_M, _DASH_OFF_M = 3.0, 6.0
_ZEBRA_BAR_M, _ZEBRA_PERIOD_M = 0.6, 1.2
_MAX_TEXELS = 64_000_000  # caps the raster at 64 MB for large maps (the resolution coarsens instead)


@dataclass(frozen=True)
class GroundTexture:
    """The map rasterised to one material id per texel, global frame.

    Attributes:
        materials: ``(rows, cols)`` uint8 :class:`Material` ids; row ``i`` covers global
            y in ``[origin_y + i r, origin_y + (i + 1) r)``, column ``j`` likewise in x. The border is grass.
        origin_xy: ``(2,)`` global (x, y) of the texture's lower-left corner, metres.
        resolution_m: texel size ``r`` in metres.
        colors: ``(n_materials, 3)`` uint8 RGB per material (cameras).
        intensities: ``(n_materials,)`` LiDAR reflectivity per material (0-255).
    """

    materials: U8
    origin_xy: F64
    resolution_m: float
    colors: U8 = field(default_factory=lambda: MATERIAL_COLORS)
    intensities: npt.NDArray[np.float32] = field(default_factory=lambda: MATERIAL_INTENSITIES)

    def materials_at(self, ego_pose: npt.ArrayLike, points_ego_xy: npt.ArrayLike) -> U8:
        """Material ids ``(N,)`` under ego-frame ground points ``(N, 2)``; outside the map reads as grass."""
        pose = np.asarray(ego_pose, dtype=np.float64)
        pts = np.asarray(points_ego_xy, dtype=np.float32)
        c, s = np.cos(pose[2]), np.sin(pose[2])
        inv = 1.0 / self.resolution_m
        # Offsets are formed in float64 and the per-point part stays float32: exact enough within the map.
        ox = np.float32((pose[0] - self.origin_xy[0]) * inv)
        oy = np.float32((pose[1] - self.origin_xy[1]) * inv)
        a, b = np.float32(c * inv), np.float32(s * inv)
        col = (a * pts[:, 0] - b * pts[:, 1] + ox).astype(np.int32)
        row = (b * pts[:, 0] + a * pts[:, 1] + oy).astype(np.int32)
        rows, cols = self.materials.shape
        np.clip(col, 0, cols - 1, out=col)
        np.clip(row, 0, rows - 1, out=row)
        return self.materials[row, col]


def _flatten(geoms: Iterable[object]) -> list[shapely.Polygon]:
    """The non-empty polygons of (multi)polygons and collections."""
    out: list[object] = []
    for g in geoms:
        if g is None or getattr(g, "is_empty", True):
            continue
        out.extend(getattr(g, "geoms", [g]))
    return [p for p in out if isinstance(p, shapely.Polygon) and not p.is_empty]


def _geoms(features: Iterable[object]) -> list[shapely.Polygon]:
    """The polygons of map features (anything with a ``polygon`` attribute)."""
    return _flatten(getattr(f, "polygon", None) for f in features)


def _map_bounds(m: RoadMap) -> tuple[float, float, float, float] | None:
    polys = _geoms([*m.lanes.values(), *m.lane_connectors.values(), *m.roadblocks.values(),
                    *m.roadblock_connectors.values(), *m.intersections.values(), *m.crosswalks.values(),
                    *m.walkways.values(), *m.carparks.values()])
    if not polys:
        return None
    b = shapely.bounds(np.array(polys, dtype=object))
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())


class _Raster:
    """PIL drawing in texel coordinates (x -> column, y -> row)."""

    def __init__(self, origin: F64, resolution_m: float, cols: int, rows: int) -> None:
        self.origin, self.res = origin, resolution_m
        self.image = Image.new("L", (cols, rows), int(Material.GRASS))
        self.draw = ImageDraw.Draw(self.image)

    def xy(self, coords: npt.ArrayLike) -> list[float]:
        return ((np.asarray(coords, dtype=np.float64)[:, :2] - self.origin) / self.res).ravel().tolist()

    def polygons(self, polys: Sequence[shapely.Polygon], material: Material) -> None:
        for p in polys:
            self.draw.polygon(self.xy(p.exterior.coords), fill=int(material))
        # Holes (a walkway ring around a block, a roundabout island) show the grass underneath.
        for p in polys:
            for ring in p.interiors:
                self.draw.polygon(self.xy(ring.coords), fill=int(Material.GRASS))

    def line(self, xy: npt.ArrayLike, material: Material, width_m: float) -> None:
        pts = self.xy(xy)
        if len(pts) >= 4:
            self.draw.line(pts, fill=int(material), width=max(1, round(width_m / self.res)), joint="curve")


def _dashes(line_xy: F64, on_m: float, off_m: float) -> list[F64]:
    """Pieces of a polyline: ``on_m`` drawn, ``off_m`` skipped, starting with a dash."""
    seg = np.linalg.norm(np.diff(line_xy, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    out = []
    period = on_m + off_m
    for start in np.arange(0.0, s[-1], period):
        stops = np.concatenate([[start], s[(s > start) & (s < start + on_m)], [min(start + on_m, s[-1])]])
        piece = np.stack([np.interp(stops, s, line_xy[:, 0]), np.interp(stops, s, line_xy[:, 1])], axis=1)
        if len(piece) >= 2:
            out.append(piece)
    return out


def _zebra_bars(poly: shapely.Polygon) -> list[shapely.Polygon]:
    """White bars of a zebra crossing: across the walking direction (the crossing's long axis)."""
    rect = np.asarray(poly.minimum_rotated_rectangle.exterior.coords)[:4]
    e1, e2 = rect[1] - rect[0], rect[2] - rect[1]
    along, across = (e1, e2) if np.linalg.norm(e1) >= np.linalg.norm(e2) else (e2, e1)
    length = float(np.linalg.norm(along))
    if length < _ZEBRA_BAR_M:
        return [poly]
    u = along / length
    starts = np.arange(0.5 * (_ZEBRA_PERIOD_M - _ZEBRA_BAR_M), length - _ZEBRA_BAR_M + 1e-9, _ZEBRA_PERIOD_M)
    base = rect[0] if np.linalg.norm(e1) >= np.linalg.norm(e2) else rect[1]
    bars = [shapely.Polygon([base + a * u, base + (a + _ZEBRA_BAR_M) * u,
                             base + (a + _ZEBRA_BAR_M) * u + across, base + a * u + across]) for a in starts]
    return _flatten(shapely.intersection(np.array(bars, dtype=object), poly))


def _boundary_styles(m: RoadMap) -> dict[int, tuple[Material, bool]]:
    """Boundary id -> (paint, dashed): yellow on a roadblock's left edge, white on its right edge, dashed white
    between lanes of the same direction. Lane-connector boundaries are not painted (no lines in junctions)."""
    styles: dict[int, tuple[Material, bool]] = {}
    by_block: dict[int, list] = {}
    for lane in m.lanes.values():
        by_block.setdefault(lane.roadblock_id, []).append(lane)
    for lanes in by_block.values():
        lanes.sort(key=lambda ln: ln.lane_index)
        for i, lane in enumerate(lanes):
            if i == 0:
                styles[lane.left_boundary_id] = (Material.MARKING_YELLOW, False)
            elif lane.left_boundary_id not in styles:
                styles[lane.left_boundary_id] = (Material.MARKING_WHITE, True)
            if i == len(lanes) - 1:
                styles.setdefault(lane.right_boundary_id, (Material.MARKING_WHITE, False))
            elif lane.right_boundary_id not in styles:
                styles[lane.right_boundary_id] = (Material.MARKING_WHITE, True)
    return styles


def rasterize_ground(road_map: RoadMap, resolution_m: float = 0.05, margin_m: float = 30.0) -> GroundTexture:
    """Rasterise a map into a :class:`GroundTexture` (coarser than ``resolution_m`` only for very large maps)."""
    bounds = _map_bounds(road_map)
    if bounds is None:
        return GroundTexture(np.zeros((1, 1), np.uint8), np.zeros(2), resolution_m)
    x0, y0, x1, y1 = bounds[0] - margin_m, bounds[1] - margin_m, bounds[2] + margin_m, bounds[3] + margin_m
    res = max(resolution_m, float(np.sqrt((x1 - x0) * (y1 - y0) / _MAX_TEXELS)))
    cols, rows = int(np.ceil((x1 - x0) / res)), int(np.ceil((y1 - y0) / res))
    r = _Raster(np.array([x0, y0]), res, cols, rows)
    r.polygons(_geoms(road_map.walkways.values()), Material.WALKWAY)
    r.polygons(_geoms(road_map.carparks.values()), Material.CARPARK)
    r.polygons(_geoms([*road_map.roadblocks.values(), *road_map.roadblock_connectors.values(),
                       *road_map.lanes.values(), *road_map.lane_connectors.values(),
                       *road_map.intersections.values()]), Material.ROAD)
    for bid, (paint, dashed) in sorted(_boundary_styles(road_map).items()):
        boundary = road_map.boundaries.get(bid)
        if boundary is None:
            continue
        pieces = _dashes(boundary.line_xy, _DASH_ON_M, _DASH_OFF_M) if dashed else [boundary.line_xy]
        for piece in pieces:
            r.line(piece, paint, _LANE_LINE_WIDTH_M)
    for cw in _geoms(road_map.crosswalks.values()):
        r.polygons(_zebra_bars(cw), Material.MARKING_WHITE)
    r.polygons(_geoms(road_map.stop_lines.values()), Material.MARKING_WHITE)
    mats = np.asarray(r.image, dtype=np.uint8).copy()
    mats[[0, -1], :] = Material.GRASS
    mats[:, [0, -1]] = Material.GRASS
    mats.setflags(write=False)
    return GroundTexture(mats, np.array([x0, y0]), res)


# One raster per live map object: the writer builds a renderer per log, and logs share their map.
_TEXTURES: list[tuple[weakref.ref[RoadMap], GroundTexture]] = []


def _cached_texture(road_map: RoadMap) -> GroundTexture:
    _TEXTURES[:] = [(ref, tex) for ref, tex in _TEXTURES if ref() is not None]
    for ref, tex in _TEXTURES:
        if ref() is road_map:
            return tex
    tex = rasterize_ground(road_map)
    _TEXTURES.append((weakref.ref(road_map), tex))
    del _TEXTURES[:-4]
    return tex


def _vehicle_paint(token: str) -> tuple[int, int, int]:
    return VEHICLE_PAINTS[zlib.crc32(token.encode()) % len(VEHICLE_PAINTS)]


def boxes_in_ego(ego_pose: npt.ArrayLike, objects: ObjectStates) -> EgoBoxes:
    """The frame's object boxes in the world's ego frame, with their colours and LiDAR intensities."""
    pose = np.asarray(ego_pose, dtype=np.float64)
    if pose.shape != (3,) or not np.all(np.isfinite(pose)):
        raise ValueError(f"ego_pose: expected finite (x, y, heading), got shape {pose.shape}")
    n = len(objects)
    c, s = np.cos(pose[2]), np.sin(pose[2])
    rel = objects.center_xyz[:, :2] - pose[:2]
    centers = np.column_stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1],
                               objects.center_xyz[:, 2]]) if n else np.zeros((0, 3))
    colors = np.array([_vehicle_paint(t) if cat == "vehicle" else CATEGORY_COLORS.get(cat, CATEGORY_COLORS[
        "generic_object"]) for t, cat in zip(objects.track_tokens, objects.categories)], dtype=np.uint8).reshape(n, 3)
    intens = np.array([CATEGORY_INTENSITIES.get(cat, 30.0) for cat in objects.categories], np.float32)
    return EgoBoxes(centers, objects.size_lwh, normalize_angle(objects.yaw_rad - pose[2]), colors, intens)


class SceneRenderer:
    """Renders the 8 cameras and the merged LiDAR of the embedded world.

    Args:
        road_map: the map drawn on the ground (rasterised once; shared between renderers of the same map).
        cameras: the cameras to render (their ``lidar_from_camera`` is composed with ``lidar.ego_from_lidar``).
        lidar: the merged LiDAR.
        seed: seeds the LiDAR's per-ray noise and dropout; same seed and inputs give identical outputs.
    """

    def __init__(self, road_map: RoadMap, cameras: Sequence[CameraSpec], lidar: LidarSpec, *, seed: int = 0) -> None:
        names = [c.name for c in cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"SceneRenderer: duplicate camera names {names}")
        self.texture = _cached_texture(road_map)
        self.lidar_spec = lidar
        ego_from_lidar = np.asarray(lidar.ego_from_lidar, dtype=np.float64)
        self.cameras = {c.name: CameraRenderer(c, ego_from_lidar @ c.lidar_from_camera, self.texture)
                        for c in cameras}
        self.lidar = LidarCaster(lidar, self.texture, seed=seed)

    def render_cameras(self, ego_pose: npt.ArrayLike, objects: ObjectStates) -> dict[str, U8]:
        """Every camera's image: name -> uint8 ``(height, width, 3)`` RGB.

        Args:
            ego_pose: ``(3,)`` global (x, y, heading) of the rear axle.
            objects: the boxes at this time step, global frame.
        """
        boxes = boxes_in_ego(ego_pose, objects)
        light = _light_in_ego(float(np.asarray(ego_pose, dtype=np.float64)[2]))
        return {name: cam.render(ego_pose, boxes, light) for name, cam in self.cameras.items()}

    def cast_lidar(self, ego_pose: npt.ArrayLike, objects: ObjectStates) -> npt.NDArray[np.float32]:
        """One merged sweep: ``(N, 6)`` float32 x, y, z, intensity, ring, lidar_id in the **lidar frame**.

        Args:
            ego_pose: ``(3,)`` global (x, y, heading) of the rear axle.
            objects: the boxes at this time step, global frame.
        """
        return self.lidar.cast(ego_pose, boxes_in_ego(ego_pose, objects))


#: Sun direction in the global frame (unit vector towards the light), for box shading.
_SUN_GLOBAL = np.array([0.35, 0.55, 0.76])


def _light_in_ego(heading_rad: float) -> F64:
    xy = se2_transform_points(np.array([0.0, 0.0, -heading_rad]), _SUN_GLOBAL[:2])
    v = np.array([xy[0], xy[1], _SUN_GLOBAL[2]])
    return v / np.linalg.norm(v)
