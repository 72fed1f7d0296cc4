"""The scoring scene: everything NAVSIM's PDM scorers need for one token (lead-bench's metric cache).

Built by ``adapters/navsim`` from logs and the nuPlan map, consumed by ``metrics/`` only. It holds what the
official ``MetricCache`` holds (specs/navsim.md §9.1), as typed arrays in the **global map frame**, and is
stored as a versioned ``.npz`` (no pickles): polygons as shapely ragged arrays, strings as fixed-width
unicode arrays.

Time grid: ``object_*`` and ``red_light_mask`` are sampled at ``t = k * 0.1 s``, ``k = 0 .. T-1`` after the
scene's current frame (T = 51 covers v1.1's 5 s; v2 uses the first 41).

Storage: the drivable map (``drivable_ids``, ``drivable_types``, ``drivable_polygons``) is most of a scene's
bytes and is shared by many scenes of a log (the map patch changes only when the ego crosses into new map
objects). It is stored once per distinct content as a *drivable patch*, ``<scene dir>/drivable/<digest>.npz``,
named by the BLAKE2b digest of its arrays; a scene file refers to it by that digest (``drivable_ref``). A
patch is checked against its digest when first read in a process, so a damaged patch fails the scenes that
use it (``DataError``, and the metric cache rebuilds them and rewrites the patch) instead of being trusted.
"""

from __future__ import annotations

import enum
import hashlib
import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from harness.errors import DataError
from harness.npz_store import _grouped_npz_view, _npz_view, _ungrouped, _write_atomically

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: Bump whenever the content or meaning of a stored field changes; older caches are then rebuilt.
SCORING_SCENE_VERSION = 6
SCORING_STEP_S = 0.1
#: Sub-directory (beside the scene files) of the shared drivable patches.
DRIVABLE_PATCH_DIR = "drivable"
DRIVABLE_PATCH_FORMAT = "lead-bench drivable patch 1"


class ObjectType(enum.IntEnum):
    """nuPlan ``TrackedObjectType`` values. VEHICLE, PEDESTRIAN, BICYCLE and EGO are agents."""

    VEHICLE = 0
    PEDESTRIAN = 1
    BICYCLE = 2
    TRAFFIC_CONE = 3
    BARRIER = 4
    CZONE_SIGN = 5
    GENERIC_OBJECT = 6
    EGO = 7

    @classmethod
    def from_name(cls, name: str) -> ObjectType:
        """OpenScene ``gt_names`` -> type (``vehicle`` -> VEHICLE, ...)."""
        try:
            return cls[name.upper()]
        except KeyError as exc:
            raise ValueError(f"unknown object category {name!r}; expected one of "
                             f"{[m.name.lower() for m in cls]}") from exc


AGENT_TYPES = frozenset({ObjectType.VEHICLE, ObjectType.PEDESTRIAN, ObjectType.BICYCLE, ObjectType.EGO})


@dataclass(frozen=True)
class ObjectTimeline:
    """Objects sampled every 0.1 s from the current frame: what a scorer collides the ego with.

    The scene's ground-truth future is one timeline; PDM-Closed's constant-velocity forecast and the v2
    traffic-agent policies produce others. Fields as the ``object_*`` fields of :class:`ScoringScene`.
    """

    tokens: npt.NDArray[np.str_]
    types: I64
    size_lwh: F64
    first_velocity_xy: F64
    present: B
    poses: F64
    velocity_xy: F64

    def __post_init__(self) -> None:
        m = len(self.tokens)
        t = self.present.shape[0] if self.present.ndim == 2 else -1
        for name, shape in (("types", (m,)), ("size_lwh", (m, 3)), ("first_velocity_xy", (m, 2)),
                            ("present", (t, m)), ("poses", (t, m, 3)), ("velocity_xy", (t, m, 2))):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"ObjectTimeline.{name}: expected {shape}, got {np.shape(getattr(self, name))}")

    @property
    def num_steps(self) -> int:
        return int(self.present.shape[0])


class SceneType(enum.IntEnum):
    ORIGINAL = 0
    SYNTHETIC = 1


@dataclass(frozen=True)
class ScoringScene:
    """One token's scoring world. All poses are global (map frame) rear-axle or box-centre poses.

    Attributes:
        token, log_name, map_location, timestamp_us, scene_type: identity.
        ego_pose: ``(3,)`` initial rear-axle pose (x, y, heading).
        ego_velocity_xy / ego_acceleration_xy: ``(2,)`` in the ego frame (the log's ``ego_dynamic_state``).
        object_tokens: ``(M,)`` track tokens; object_types ``(M,)`` ``ObjectType``; object_size_lwh ``(M, 3)`` and
            object_first_velocity_xy ``(M, 2)`` (global frame) from each track's first appearance.
        object_present: ``(T, M)``; object_poses ``(T, M, 3)`` box-centre (x, y, heading); object_velocity_xy
            ``(T, M, 2)`` global; values where not present are 0.
        light_connector_ids: ``(L,)`` lane connectors with a traffic light; red_light_mask ``(T, L)`` red at step k
            (zero-order hold of the 2 Hz log status).
        light_polygons: ``(L,)`` the lane-connector polygons of those ids.
        drivable_ids / drivable_types / drivable_polygons: ``(P,)`` PDM drivable map within 100 m (types are
            ``harness.map_query.MapLayer`` values: ROADBLOCK, LANE, LANE_CONNECTOR, INTERSECTION, CARPARK_AREA).
        route_roadblock_ids: corrected route; route_lane_ids: interior lanes/connectors of the route.
        centerline: ``(K, 3)`` PDM-Closed's discrete centerline (x, y, heading).
        pdm_closed_states: ``(S, 11)`` PDM-Closed's reference trajectory (StateIndex layout), at
            ``pdm_closed_times_s`` ``(S,)`` after the current frame.
        human_future_local: ``(N, 3)`` logged future poses at 0.5 s in the ego frame (None for synthetic scenes).
        human_history_global: ``(H, 3)`` logged past poses incl. the current one, with ``human_history_times_s``.
        fingerprint: identifies the inputs the scene was built from (rebuild when it changes).
        object_in_current_frame: ``(M,)`` the track is annotated at the current keyframe (PDM-Closed plans
            with the current detections only; a track first seen later is frozen at step 0 but not detected).
        log_route_lane_ids: lanes of the log's de-duplicated route *before* correction: NAVSIM v2 draws red
            lights only for connectors among these.
        start_lane_speed_limit_mps: speed limit of PDM's starting lane (None where the map has none;
            PDM-Closed then falls back to 15 m/s).
        human_history_dynamics: ``(H, 4)`` the logged ``ego_dynamic_state`` (vx, vy, ax, ay; ego frame,
            float32-rounded) of the ``human_history_global`` frames: EPDMS's history comfort needs them.
    """

    token: str
    log_name: str
    map_location: str
    timestamp_us: int
    scene_type: int
    ego_pose: F64
    ego_velocity_xy: F64
    ego_acceleration_xy: F64
    object_tokens: npt.NDArray[np.str_]
    object_types: I64
    object_size_lwh: F64
    object_first_velocity_xy: F64
    object_present: B
    object_poses: F64
    object_velocity_xy: F64
    light_connector_ids: I64
    red_light_mask: B
    light_polygons: npt.NDArray[np.object_]
    drivable_ids: I64
    drivable_types: I64
    drivable_polygons: npt.NDArray[np.object_]
    route_roadblock_ids: I64
    route_lane_ids: I64
    centerline: F64
    pdm_closed_states: F64
    pdm_closed_times_s: F64
    human_future_local: F64 | None
    human_history_global: F64 | None
    human_history_times_s: F64 | None
    fingerprint: str = ""
    version: int = SCORING_SCENE_VERSION
    object_in_current_frame: B | None = None
    log_route_lane_ids: I64 | None = None
    start_lane_speed_limit_mps: float | None = None
    human_history_dynamics: F64 | None = None

    def __post_init__(self) -> None:
        m = len(self.object_tokens)
        t = self.object_present.shape[0] if self.object_present.ndim == 2 else -1
        checks: dict[str, tuple[Any, tuple[int, ...]]] = {
            "ego_pose": (self.ego_pose, (3,)),
            "ego_velocity_xy": (self.ego_velocity_xy, (2,)),
            "ego_acceleration_xy": (self.ego_acceleration_xy, (2,)),
            "object_types": (self.object_types, (m,)),
            "object_size_lwh": (self.object_size_lwh, (m, 3)),
            "object_first_velocity_xy": (self.object_first_velocity_xy, (m, 2)),
            "object_present": (self.object_present, (t, m)),
            "object_poses": (self.object_poses, (t, m, 3)),
            "object_velocity_xy": (self.object_velocity_xy, (t, m, 2)),
            "red_light_mask": (self.red_light_mask, (t, len(self.light_connector_ids))),
            "light_polygons": (self.light_polygons, (len(self.light_connector_ids),)),
            "drivable_types": (self.drivable_types, (len(self.drivable_ids),)),
            "drivable_polygons": (self.drivable_polygons, (len(self.drivable_ids),)),
            "pdm_closed_times_s": (self.pdm_closed_times_s, (self.pdm_closed_states.shape[0],)),
        }
        for name, (arr, shape) in checks.items():
            if np.shape(arr) != shape:
                raise ValueError(f"ScoringScene[{self.token}].{name}: expected shape {shape}, got {np.shape(arr)}")
        if self.centerline.ndim != 2 or self.centerline.shape[1] != 3:
            raise ValueError(f"ScoringScene[{self.token}].centerline: expected (K, 3), got {self.centerline.shape}")
        if self.pdm_closed_states.ndim != 2 or self.pdm_closed_states.shape[1] != 11:
            raise ValueError(
                f"ScoringScene[{self.token}].pdm_closed_states: expected (S, 11), got {self.pdm_closed_states.shape}")
        for name in ("ego_pose", "ego_velocity_xy", "ego_acceleration_xy", "object_poses", "centerline",
                     "pdm_closed_states"):
            if not np.isfinite(getattr(self, name)).all():
                raise ValueError(f"ScoringScene[{self.token}].{name}: values must be finite")

    @property
    def num_steps(self) -> int:
        return int(self.object_present.shape[0])

    @property
    def objects(self) -> ObjectTimeline:
        """The ground-truth object timeline (log replay, interpolated to 10 Hz)."""
        return ObjectTimeline(self.object_tokens, self.object_types, self.object_size_lwh,
                              self.object_first_velocity_xy, self.object_present, self.object_poses,
                              self.object_velocity_xy)

    # --- storage ------------------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write as a versioned ``.npz`` through a temporary file; the drivable map goes to its shared patch
        (``<dir of path>/drivable/<digest>.npz``, written only if that patch is not there yet)."""
        arrays: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name in _DRIVABLE_FIELDS:
                continue
            if f.name in _POLYGON_FIELDS:
                _pack_polygons(arrays, f.name, value)
            else:
                arrays[f.name] = np.asarray(value)
        p = Path(path)
        arrays["drivable_ref"] = np.array(
            _PATCHES.store(p.parent / DRIVABLE_PATCH_DIR, self.drivable_ids, self.drivable_types,
                           self.drivable_polygons))
        _write_atomically(p, _grouped_npz_view(arrays))

    @classmethod
    def load(cls, path: str | Path) -> ScoringScene:
        """Read a scene written by :meth:`save` (scenes of one patch share its arrays, read-only).

        Raises:
            DataError: missing/corrupt file or drivable patch, missing field, or a different
                ``SCORING_SCENE_VERSION``.
        """
        p = Path(path)
        data = stored_arrays(p)
        version = int(data.get("version", -1))
        if version != SCORING_SCENE_VERSION:
            raise DataError(f"scoring scene version {version}, this lead-bench needs {SCORING_SCENE_VERSION}",
                            path=p)
        if "drivable_ref" not in data:
            raise DataError("scoring scene lacks field 'drivable_ref'", path=p)
        drivable = _PATCHES.load(p.parent / DRIVABLE_PATCH_DIR, str(data["drivable_ref"]))
        kwargs: dict[str, Any] = dict(zip(_DRIVABLE_FIELDS, drivable, strict=True))
        for f in fields(cls):
            if f.name in _DRIVABLE_FIELDS:
                continue
            if f.name in _POLYGON_FIELDS:
                kwargs[f.name] = _unpack_polygons(data, f.name, p)
            elif f.name in data:
                v = data[f.name]
                kwargs[f.name] = v.item() if v.ndim == 0 and f.name in _SCALARS else v
            elif f.name in _OPTIONAL:
                kwargs[f.name] = None
            else:
                raise DataError(f"scoring scene lacks field '{f.name}'", path=p)
        kwargs["token"] = str(kwargs["token"])
        kwargs["log_name"] = str(kwargs["log_name"])
        kwargs["map_location"] = str(kwargs["map_location"])
        kwargs["fingerprint"] = str(kwargs["fingerprint"])
        kwargs["timestamp_us"] = int(kwargs["timestamp_us"])
        kwargs["scene_type"] = int(kwargs["scene_type"])
        kwargs["version"] = int(kwargs["version"])
        return cls(**kwargs)


def stored_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The named arrays of a stored scene file as written (``drivable_ref``, packed polygons, ...).

    Raises:
        DataError: a missing or unreadable file.
    """
    p = Path(path)
    try:
        # Read in one go: the zip reader's small reads from a file cost more than the arrays.
        with np.load(io.BytesIO(p.read_bytes()), allow_pickle=False) as z:
            return _ungrouped({k: z[k] for k in z.files})
    except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read scoring scene ({exc})", path=p) from exc



_POLYGON_FIELDS = ("light_polygons",)
_DRIVABLE_FIELDS = ("drivable_ids", "drivable_types", "drivable_polygons")
_SCALARS = ("token", "log_name", "map_location", "timestamp_us", "scene_type", "fingerprint", "version",
            "start_lane_speed_limit_mps")
_OPTIONAL = ("human_future_local", "human_history_global", "human_history_times_s", "object_in_current_frame",
             "log_route_lane_ids", "start_lane_speed_limit_mps", "human_history_dynamics")



#: Ragged arrays of the polygon sets last packed, keyed by the polygons' identities (the entry holds the
#: polygons, so an id in a key cannot be reused while it is kept): the scenes of a log store the same map
#: polygons (their traffic lights' lane connectors), converted once. Read-only arrays, only ever written out.
_PACKED: OrderedDict[tuple[int, ...], tuple[tuple[object, ...], np.ndarray, tuple[np.ndarray, np.ndarray]]] = (
    OrderedDict())
_PACKED_KEPT = 64


def _pack_polygons(arrays: dict[str, np.ndarray], name: str, polys: np.ndarray) -> None:
    if len(polys) == 0:
        arrays[f"{name}__n"] = np.array(0)
        return
    objs = tuple(np.asarray(polys, dtype=object).reshape(-1).tolist())
    key = tuple(map(id, objs))
    hit = _PACKED.get(key)
    if hit is not None:
        coords, offsets = hit[1], hit[2]
    else:
        coords, offsets = _ragged_polygons(np.asarray(polys, dtype=object), name)
        for a in (coords, *offsets):
            a.flags.writeable = False
        _PACKED[key] = (objs, coords, offsets)
        while len(_PACKED) > _PACKED_KEPT:
            _PACKED.popitem(last=False)
    arrays[f"{name}__n"] = np.array(len(polys))
    arrays[f"{name}__coords"] = coords
    for i, off in enumerate(offsets):
        arrays[f"{name}__off{i}"] = off


def _ragged_polygons(polys: np.ndarray, name: str) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """``shapely.to_ragged_array`` of polygons (same arrays), without copying rings when none has holes."""
    types = shapely.get_type_id(polys)
    if np.any(types != shapely.GeometryType.POLYGON):
        raise ValueError(f"{name}: expected polygons, got geometry types {sorted(set(types.tolist()))}")
    if np.any(shapely.get_num_interior_rings(polys) != 0) or np.any(shapely.is_empty(polys)):
        _, coords, offsets = shapely.to_ragged_array(polys)
        return coords, (offsets[0], offsets[1])
    ring_ends = np.cumsum(shapely.get_num_coordinates(polys), dtype=np.int32)
    return (shapely.get_coordinates(polys), (np.concatenate([[0], ring_ends]).astype(np.int32),
                                             np.arange(len(polys) + 1, dtype=np.int32)))


def _unpack_polygons(data: dict[str, np.ndarray], name: str, path: Path) -> np.ndarray:
    if f"{name}__n" not in data:
        raise DataError(f"scoring scene lacks field '{name}'", path=path)
    if int(data[f"{name}__n"]) == 0:
        return np.empty(0, dtype=object)
    offsets = tuple(data[f"{name}__off{i}"] for i in range(2))
    return np.asarray(shapely.from_ragged_array(shapely.GeometryType.POLYGON, data[f"{name}__coords"], offsets),
                      dtype=object)



# --- shared drivable patches ------------------------------------------------------------------------------


class _DrivablePatches:
    """Content-addressed drivable patches: write each distinct one once, read and verify each once.

    Per process it remembers (bounded, least recently used first out) the digests of the arrays it was last
    asked to store (scenes built from one map query share the very same arrays, so their digest is computed
    once), the patch files it wrote or verified, and the arrays of the patches it read.
    """

    REMEMBER = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._digests: OrderedDict[tuple[int, int, int], tuple[Any, str]] = OrderedDict()
        self._on_disk: OrderedDict[Path, None] = OrderedDict()
        self._read: OrderedDict[Path, tuple[I64, I64, np.ndarray]] = OrderedDict()

    def _remember(self, table: OrderedDict, key: Any, value: Any) -> None:
        with self._lock:
            table[key] = value
            table.move_to_end(key)
            while len(table) > self.REMEMBER:
                table.popitem(last=False)

    def store(self, directory: Path, ids: np.ndarray, types: np.ndarray, polygons: np.ndarray) -> str:
        """Write the patch of these arrays under ``directory`` unless it is there; returns its digest."""
        key = (id(ids), id(types), id(polygons))
        hit = self._digests.get(key)
        if hit is not None and hit[0][0] is ids and hit[0][1] is types and hit[0][2] is polygons:
            digest = hit[1]
            arrays = None
        else:
            arrays = _patch_arrays(ids, types, polygons)
            digest = _patch_digest(arrays)
            self._remember(self._digests, key, ((ids, types, polygons), digest))
        path = directory / f"{digest}.npz"
        if path in self._on_disk:
            return digest
        if path.is_file():
            try:
                self.load(directory, digest)  # verified: an intact patch is not rewritten
                self._remember(self._on_disk, path, None)
                return digest
            except DataError:
                pass  # damaged: write it again
        if arrays is None:
            arrays = _patch_arrays(ids, types, polygons)
        arrays["format"] = np.array(DRIVABLE_PATCH_FORMAT)
        arrays["digest"] = np.array(digest)
        _write_atomically(path, _npz_view(arrays))
        self._remember(self._on_disk, path, None)
        return digest

    def load(self, directory: Path, digest: str) -> tuple[I64, I64, np.ndarray]:
        """The patch's ``(ids, types, polygons)``, read-only; checked against its digest on first read.

        Raises:
            DataError: a malformed digest, a missing, unreadable or damaged patch.
        """
        if not _DIGEST.fullmatch(digest):
            raise DataError(f"drivable patch reference {digest!r} is not a digest", path=directory)
        path = directory / f"{digest}.npz"
        hit = self._read.get(path)
        if hit is not None:
            return hit
        try:
            return self._read_verified(path, digest)
        except DataError:
            with self._lock:
                self._on_disk.pop(path, None)  # so that the next store() writes it again
            raise

    def _read_verified(self, path: Path, digest: str) -> tuple[I64, I64, np.ndarray]:
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"cannot read drivable patch ({exc})", path=path) from exc
        if str(data.get("format", "")) != DRIVABLE_PATCH_FORMAT:
            raise DataError(f"not a drivable patch of format {DRIVABLE_PATCH_FORMAT!r}", path=path)
        try:
            arrays = {k: data[k] for k in _PATCH_KEYS if f"{k}" in data}
            for k in ("ids", "types", "polygons__n"):
                if k not in arrays:
                    raise KeyError(k)
            ok = _patch_digest(arrays) == digest
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"drivable patch lacks or garbles {exc}", path=path) from exc
        if not ok:
            raise DataError("drivable patch content does not match its digest (damaged)", path=path)
        ids = data["ids"].astype(np.int64)
        types = data["types"].astype(np.int64)
        polys = _unpack_polygons(data, "polygons", path)
        if len(types) != len(ids) or len(polys) != len(ids):
            raise DataError(f"drivable patch: {len(ids)} ids, {len(types)} types, {len(polys)} polygons", path=path)
        for a in (ids, types, polys):
            a.flags.writeable = False
        out = (ids, types, polys)
        self._remember(self._read, path, out)
        return out


_PATCHES = _DrivablePatches()
_DIGEST = re.compile(r"[0-9a-f]{32}")
_PATCH_KEYS = ("ids", "types", "polygons__n", "polygons__coords", "polygons__off0", "polygons__off1")


def _patch_arrays(ids: np.ndarray, types: np.ndarray, polygons: np.ndarray) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"ids": np.asarray(ids, dtype=np.int64), "types": np.asarray(types, dtype=np.int64)}
    _pack_polygons(arrays, "polygons", polygons)
    return arrays


def _patch_digest(arrays: dict[str, np.ndarray]) -> str:
    """BLAKE2b (128 bit) of a patch's arrays: shapes, then little-endian bytes with fixed dtypes."""
    h = hashlib.blake2b(digest_size=16)
    for k, dtype in (("ids", "<i8"), ("types", "<i8"), ("polygons__n", "<i8"), ("polygons__coords", "<f8"),
                     ("polygons__off0", "<i8"), ("polygons__off1", "<i8")):
        if k not in arrays:
            h.update(f"{k}:absent;".encode())
            continue
        a = np.ascontiguousarray(arrays[k], dtype=dtype)
        h.update(f"{k}:{a.shape};".encode())
        h.update(a.reshape(-1).view(np.uint8) if a.size else b"")  # the array's bytes, not copied
    return h.hexdigest()
