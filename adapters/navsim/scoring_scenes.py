"""Build lead-bench's metric cache: one :class:`ScoringScene` per NAVSIM token, from logs and the nuPlan map.

What NAVSIM's ``MetricCacheProcessor.compute_metric_cache`` stores (specs/navsim.md §4, §9), except the
PDM-Closed trajectory, which is left as an empty placeholder for the PDM-Closed builder to fill:

- initial ego state: the current frame's rear-axle pose and ``ego_dynamic_state`` (velocity and acceleration
  pass through float32 as in NAVSIM's ``EgoStatus``);
- object timeline at 10 Hz (:mod:`adapters.navsim.scoring_objects`);
- traffic lights: every lane connector named in the horizon's keyframes, red at step ``k`` when keyframe
  ``k // 5`` lists it red (NAVSIM v2's ``_interpolate_traffic_light_status``), with its polygon;
- PDM-Closed's map products: the drivable map within 100 m (square) of the ego's centre, the corrected route
  (de-duplicated), its lane ids and the discrete centerline (:mod:`adapters.navsim.scoring_route`, :mod:`adapters.navsim.scoring_centerline`);
- the human's future keyframes in the current ego frame and its history keyframes in the map frame.

Checked against the official code run on embedded-world scenes (v1.1 metric caching and a full PDM-Closed
run; v2.2 ``main`` for the 4 s timeline, lights and human trajectories): objects, drivable map, route, route
lanes, centerline and initial state agree bit for bit. Things a consumer must know:

- NAVSIM v2 draws a red light only for connectors among the lanes of the log's *uncorrected* route
  (``MetricCacheProcessor._load_route_dicts(scenario.get_route_roadblock_ids())``), not of the corrected
  ``route_lane_ids`` stored here; ``light_connector_ids`` keeps every connector the keyframes name.
- ``human_future_local`` holds every future keyframe of the scene (10 on navtest); v2's ``human_trajectory``
  is its first 8 poses (4 s). It differs from nuPlan's matrix-based ``absolute_to_relative_poses`` by float
  rounding only (< 2e-9 m at UTM coordinates).
- Synthetic (v2 two-stage) scenes get no human future; their ``extended_*`` future objects and lights are not
  read (NavsimFrame has no such fields).

:class:`ScoringSceneCache` keeps one ``.npz`` per token under ``<cache_dir>/<log_name>/``, with a per-log
``index.json``, and rebuilds a scene whose fingerprint (log size and mtime, map version, horizon,
``SCORING_SCENE_VERSION``) no longer matches.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from adapters.navsim.log_format import NavsimFrame, relative_poses
from adapters.navsim.map_reader import read_nuplan_map
from adapters.navsim.map_writer import canonical_location, maps_json_path
from adapters.navsim.reader import NavsimReader
from adapters.navsim.scene_filter import SceneWindow
from adapters.navsim.scoring_centerline import centerline_from_lane, discrete_centerline, starting_lane
from adapters.navsim.scoring_objects import SceneObjects, num_keyframes, object_timelines, step_times
from adapters.navsim.scoring_route import dedupe_route, ego_center, route_lane_ids, route_roadblock_correction
from harness.atomic import atomic_write_text
from harness.errors import DataError, MapError
from harness.map_query import MapQuery
from harness.maps import RoadMap
from harness.scoring_scene import SCORING_SCENE_VERSION, SceneType, ScoringScene

__all__ = [
    "MAP_RADIUS_M",
    "ScoringSceneCache",
    "build_scoring_scene",
    "discrete_centerline",
    "red_light_mask",
    "route_roadblock_correction",
]

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

#: PDM-Closed's ``map_radius`` in the metric cache (half-side of nuPlan's square proximity query), metres.
MAP_RADIUS_M = 100.0
#: NAVSIM v2 marks a synthetic scene by its 17-character token.
SYNTHETIC_TOKEN_LENGTH = 17
#: 10 Hz steps per 2 Hz keyframe.
STEPS_PER_KEYFRAME = 5


def red_light_mask(
    frames: Sequence[NavsimFrame], road_map: RoadMap, num_steps: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_], npt.NDArray[np.object_]]:
    """Red-light status per 10 Hz step for every lane connector the keyframes name.

    Args:
        frames: the horizon's keyframes, current first (0.5 s apart).
        road_map: supplies each connector's polygon; ids it does not know are dropped (no polygon exists,
            and NAVSIM only ever uses connectors of the route).
        num_steps: 10 Hz steps T; step ``k`` takes the status of keyframe ``k // 5`` (zero-order hold).

    Returns:
        ``(ids (L,), red (T, L), polygons (L,))``, ids ascending. A connector listed twice in one keyframe
        counts as red if either entry is red (NAVSIM adds a polygon per red entry).
    """
    per_frame = [_frame_lights(f.traffic_lights) for f in frames]
    known = _map_lights(road_map)[0]
    ids = sorted(frozenset().union(*[p[0] for p in per_frame]) & known)
    col = {c: j for j, c in enumerate(ids)}
    red_kf = np.zeros((len(frames), len(ids)), dtype=bool)
    for k, (_, red_ids) in enumerate(per_frame):
        for c in red_ids:
            j = col.get(c)
            if j is not None:
                red_kf[k, j] = True
    red = red_kf[np.minimum(np.arange(num_steps) // STEPS_PER_KEYFRAME, len(frames) - 1)]
    ids_array = np.asarray(ids, dtype=np.int64)
    return ids_array, red, _light_polygons(road_map, ids_array)


#: Per keyframe, its lights (the set of ids named, the red ids), by the identity of its ``traffic_lights``
#: tuple (kept in the entry so that the identity stays its own): a keyframe belongs to a dozen scenes.
_FRAME_LIGHTS: dict[int, tuple[tuple[tuple[int, bool], ...], frozenset[int], tuple[int, ...]]] = {}


def _frame_lights(lights: tuple[tuple[int, bool], ...]) -> tuple[frozenset[int], tuple[int, ...]]:
    hit = _FRAME_LIGHTS.get(id(lights))
    if hit is not None and hit[0] is lights:
        return hit[1], hit[2]
    named = frozenset(c for c, _ in lights)
    red = tuple(dict.fromkeys(c for c, r in lights if r))
    if len(_FRAME_LIGHTS) >= 4096:
        _FRAME_LIGHTS.clear()
    _FRAME_LIGHTS[id(lights)] = (lights, named, red)
    return named, red


#: Per map (by identity, the map kept in the entry): the ids of its lanes and lane connectors, and the
#: light polygons of the last id sets asked for (scenes of a log name the same connectors).
_MAP_LIGHTS: dict[int, tuple[RoadMap, frozenset[int], dict[bytes, npt.NDArray[np.object_]]]] = {}


def _map_lights(road_map: RoadMap) -> tuple[frozenset[int], dict[bytes, npt.NDArray[np.object_]]]:
    hit = _MAP_LIGHTS.get(id(road_map))
    if hit is None or hit[0] is not road_map:
        known = frozenset(road_map.lane_connectors) | frozenset(road_map.lanes)
        if len(_MAP_LIGHTS) >= 8:
            _MAP_LIGHTS.clear()
        hit = _MAP_LIGHTS[id(road_map)] = (road_map, known, {})
    return hit[1], hit[2]


def _light_polygons(road_map: RoadMap, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.object_]:
    """The polygons of ``ids`` (connector first, else lane), a fresh object array."""
    memo = _map_lights(road_map)[1]
    key = ids.tobytes()
    polys = memo.get(key)
    if polys is None:
        polys = np.empty(len(ids), dtype=object)
        for j, c in enumerate(ids.tolist()):
            obj = road_map.lane_connectors.get(c) or road_map.lanes[c]
            polys[j] = obj.polygon
        if len(memo) >= 256:
            memo.clear()
        memo[key] = polys
    return polys.copy()


def build_scoring_scene(
    frames: Sequence[NavsimFrame],
    current: int,
    road_map: RoadMap,
    map_query: MapQuery,
    *,
    horizon_s: float = 5.0,
    fingerprint: str = "",
    objects: SceneObjects | None = None,
) -> ScoringScene:
    """The scoring scene of one NAVSIM scene (metric cache without the PDM-Closed trajectory).

    Args:
        frames: the scene's parsed frames (``NavsimReader.scene_frames``), history first.
        current: index of the current frame in ``frames``.
        road_map: the nuPlan map of the scene's location; map_query its index (``MapQuery(road_map)``).
        horizon_s: object/light horizon (v1.1: 5.0 s, 51 steps; v2: 4.0 s, 41 steps); a multiple of 0.5 s.
        fingerprint: stored with the scene (see :class:`ScoringSceneCache`).
        objects: the scene's objects when already computed (``object_timelines`` of its log, same horizon);
            computed here otherwise.

    Returns:
        The scene in the map frame; ``pdm_closed_states`` is ``(0, 11)`` and ``pdm_closed_times_s`` ``(0,)``
        until PDM-Closed fills them.

    Raises:
        DataError: no annotations, too few future frames, an empty or unknown route, or a map without the
            lanes PDM needs (each names the token).
    """
    if not 0 <= current < len(frames):
        raise ValueError(f"current index {current} outside the scene's {len(frames)} frames")
    if horizon_s <= 0 or abs(horizon_s / 0.5 - round(horizon_s / 0.5)) > 1e-9:
        raise ValueError(f"horizon_s must be a positive multiple of 0.5 s, got {horizon_s}")
    now = frames[current]
    if objects is None:
        objects = object_timelines(frames, [current], horizon_s)[0]
    timeline = objects.timeline
    n_steps = len(step_times(horizon_s))
    keyframes = frames[current : current + num_keyframes(horizon_s)]
    light_ids, red, light_polys = red_light_mask(keyframes, road_map, n_steps)

    ego_pose = np.asarray(now.ego_pose, dtype=np.float64)
    drivable = map_query.drivable_polygons_within(ego_center(ego_pose), MAP_RADIUS_M)
    try:
        corrected = route_roadblock_correction(ego_pose, road_map, map_query, now.roadblock_ids)
        route = dedupe_route(corrected, road_map)
        lanes = route_lane_ids(route, road_map)
        lane = starting_lane(ego_pose, road_map, drivable.ids, drivable.polygons, lanes)
        centerline = centerline_from_lane(lane, road_map, route, lanes)
    except ValueError as exc:
        raise DataError(f"PDM route/centerline: {exc}", token=now.token) from exc

    try:
        raw = [int(r) for r in dict.fromkeys(now.roadblock_ids)]
    except ValueError as exc:
        raise DataError(f"route id is not an integer ({exc})", token=now.token) from exc
    known = [r for r in raw if r in road_map.roadblocks or r in road_map.roadblock_connectors]
    log_lanes = route_lane_ids(known, road_map)

    synthetic = len(now.token) == SYNTHETIC_TOKEN_LENGTH
    rel = relative_poses(frames, current)
    times = (np.array([f.timestamp_us for f in frames], dtype=np.int64) - now.timestamp_us) / 1e6
    history = np.stack([f.ego_pose for f in frames[: current + 1]]).astype(np.float64)
    dyn = np.asarray(now.ego_dynamic_state, dtype=np.float32).astype(np.float64)
    return ScoringScene(
        token=now.token,
        log_name=now.log_name,
        map_location=now.map_location,
        timestamp_us=int(now.timestamp_us),
        scene_type=int(SceneType.SYNTHETIC if synthetic else SceneType.ORIGINAL),
        ego_pose=ego_pose.copy(),
        ego_velocity_xy=dyn[:2],
        ego_acceleration_xy=dyn[2:],
        object_tokens=timeline.tokens,
        object_types=timeline.types,
        object_size_lwh=timeline.size_lwh,
        object_first_velocity_xy=timeline.first_velocity_xy,
        object_present=timeline.present,
        object_poses=timeline.poses,
        object_velocity_xy=timeline.velocity_xy,
        light_connector_ids=light_ids,
        red_light_mask=red,
        light_polygons=light_polys,
        drivable_ids=drivable.ids,
        drivable_types=drivable.types,
        drivable_polygons=drivable.polygons,
        route_roadblock_ids=np.asarray(route, dtype=np.int64),
        route_lane_ids=np.asarray(lanes, dtype=np.int64),
        centerline=centerline,
        pdm_closed_states=np.zeros((0, 11)),
        pdm_closed_times_s=np.zeros(0),
        human_future_local=None if synthetic else rel[current + 1 :].copy(),
        human_history_global=history,
        human_history_times_s=times[: current + 1].copy(),
        fingerprint=fingerprint,
        object_in_current_frame=objects.in_current_frame,
        start_lane_speed_limit_mps=_speed_limit(road_map, lane),
        log_route_lane_ids=np.asarray(log_lanes, dtype=np.int64),
        human_history_dynamics=np.stack(
            [np.asarray(f.ego_dynamic_state, dtype=np.float32) for f in frames[: current + 1]]
        ).astype(np.float64),
    )


def _speed_limit(road_map: RoadMap, lane_id: int) -> float | None:
    obj = road_map.lanes.get(lane_id) or road_map.lane_connectors.get(lane_id)
    limit = None if obj is None else obj.speed_limit_mps
    return None if limit is None or not np.isfinite(limit) else float(limit)


# --- cache ------------------------------------------------------------------------------------------------


class ScoringSceneCache:
    """A directory of scoring scenes, ``<cache_dir>/<log_name>/<token>.npz`` plus ``<log_name>/index.json``.

    ``get(token)`` returns the stored scene when its fingerprint matches the inputs, and otherwise builds it
    from the reader's logs and the map, writes it (temporary file, then rename) and records it in the log's
    index. The fingerprint covers the log pickle's size and mtime, the map location and version, the
    horizon and ``SCORING_SCENE_VERSION``, so editing a log, swapping the map or upgrading lead-bench
    rebuilds exactly the scenes concerned. The ``.npz`` files (each with its own fingerprint) are
    authoritative; the index is a listing, updated under a lock file by processes writing the same log at once.

    Object timelines are computed per log, several scenes at once (:meth:`build` keeps the others of a batch
    for their turn): announce the tokens to be built with :meth:`expect` so that batches hold exactly those;
    unannounced batches take the next scenes of the log and shrink when they go unused. Either way each scene
    is byte for byte the one :func:`build_scoring_scene` builds alone.

    Args:
        cache_dir: root of the cache (created on first write).
        reader: the split's reader (its scene filter defines the tokens).
        maps_root: nuPlan maps root (``nuplan-maps-v1.0.json``, ``<location>/<version>/map.gpkg``).
        horizon_s: object/light horizon of the scenes (5.0 for v1.1, 4.0 for v2).
        map_version: force a map version instead of the one the maps json names.
    """

    INDEX = "index.json"

    def __init__(
        self,
        cache_dir: str | Path,
        reader: NavsimReader,
        maps_root: str | Path,
        *,
        horizon_s: float = 5.0,
        map_version: str | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.reader = reader
        self.maps_root = Path(maps_root)
        self.horizon_s = float(horizon_s)
        self.map_version = map_version
        self._maps: dict[str, tuple[RoadMap, MapQuery]] = {}
        self._versions: dict[str, str] = {}
        self._objects: dict[str, SceneObjects] = {}  # timelines computed with an earlier token's batch
        self._log_windows: dict[str, tuple[list[SceneWindow], dict[str, int]]] = {}
        self._expected: set[str] = set()
        self._batch_size = self.OBJECT_BATCH  # scenes of the next unannounced batch (see _batched_objects)
        self._batch_used = 0  # of the current batch's other scenes, those asked for so far
        self.built = 0  # scenes built (not read) by this instance

    # --- inputs -------------------------------------------------------------------------------------------

    def _version(self, location: str) -> str:
        if self.map_version is not None:
            return self.map_version
        loc = canonical_location(location)
        if loc not in self._versions:
            path = maps_json_path(self.maps_root)
            try:
                self._versions[loc] = str(json.loads(path.read_text(encoding="utf-8"))[loc]["version"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise MapError(f"maps json has no version for {loc} ({exc!r})", path=path) from exc
        return self._versions[loc]

    def map_for(self, location: str) -> tuple[RoadMap, MapQuery]:
        """The map of a location and its index (read once per cache instance)."""
        loc = canonical_location(location)
        if loc not in self._maps:
            road_map = read_nuplan_map(self.maps_root, loc, self._version(loc))
            self._maps[loc] = (road_map, MapQuery(road_map))
        return self._maps[loc]

    def fingerprint(self, log_name: str, location: str) -> str:
        """What a stored scene of ``log_name`` must have been built from to be reused."""
        st = (self.reader.logs_dir / f"{log_name}.pkl").stat()
        return (f"v{SCORING_SCENE_VERSION}|log={st.st_size}:{st.st_mtime_ns}|map={canonical_location(location)}:"
                f"{self._version(location)}|horizon={self.horizon_s:g}")

    def path_of(self, log_name: str, token: str) -> Path:
        return self.cache_dir / log_name / f"{token}.npz"

    # --- access -------------------------------------------------------------------------------------------

    def get(self, token: str) -> ScoringScene:
        """The scoring scene of ``token``: read if current, else built and stored.

        Raises:
            DataError: unknown token, or the scene cannot be built (see :func:`build_scoring_scene`).
        """
        scene = self.stored(token)
        if scene is None:
            scene = self.build(token)
            self.put([scene])
        return scene

    def stored(self, token: str) -> ScoringScene | None:
        """The stored scene of ``token`` if its fingerprint matches the current inputs, else None.

        Raises:
            DataError: unknown token.
        """
        frames, current = self.reader.scene_frames(token)
        now = frames[current]
        path = self.path_of(now.log_name, token)
        if not path.is_file():
            return None
        try:
            scene = ScoringScene.load(path)
        except DataError as exc:
            log.info("rebuilding scoring scene %s: %s", token, exc)
            return None
        if scene.fingerprint != self.fingerprint(now.log_name, now.map_location):
            log.info("rebuilding scoring scene %s: inputs changed", token)
            return None
        return scene

    def build(self, token: str) -> ScoringScene:
        """Build the scene of ``token`` from the logs and the map without storing it (see :meth:`put`).

        The object timelines of the scenes that follow ``token`` in its log (those announced by
        :meth:`expect`, or else the next ones) are computed with its own, in one batch, and kept for their turn.

        Raises:
            DataError: unknown token, or the scene cannot be built (see :func:`build_scoring_scene`).
        """
        frames, current = self.reader.scene_frames(token)
        now = frames[current]
        fp = self.fingerprint(now.log_name, now.map_location)
        road_map, query = self.map_for(now.map_location)
        scene = build_scoring_scene(frames, current, road_map, query, horizon_s=self.horizon_s, fingerprint=fp,
                                    objects=self._batched_objects(token))
        self.built += 1
        return scene

    #: Scenes whose object timelines are computed together (one log's, in time order).
    OBJECT_BATCH = 32

    def expect(self, tokens: Sequence[str]) -> None:
        """Announce the tokens about to be built, so that object timelines are batched over exactly those
        (without it, a batch holds the next scenes of the log, which a sparse selection may not ask for)."""
        self._expected = set(tokens)

    def _batched_objects(self, token: str) -> SceneObjects | None:
        """``token``'s objects from the current batch, or from a new batch starting at it; None when the batch
        cannot be computed (``build_scoring_scene`` then computes the scene alone and names its error)."""
        hit = self._objects.pop(token, None)
        if hit is not None:
            self._batch_used += 1
            return hit
        window = self.reader.windows()[token]
        if window.num_frames - window.num_history_frames < num_keyframes(self.horizon_s) - 1:
            return None  # too few future frames: the scene alone raises the error
        if window.log_name not in self._log_windows:
            ws = sorted((w for w in self.reader.windows().values() if w.log_name == window.log_name),
                        key=lambda w: w.start)
            self._log_windows[window.log_name] = (ws, {w.token: i for i, w in enumerate(ws)})
        ws, position = self._log_windows[window.log_name]
        following = ws[position[token]:]
        if token in self._expected:
            following = [w for w in following if w.token in self._expected]
        elif self._objects:
            # Scenes asked for out of log order, or a sparse selection: size the next batch by how much of the
            # last one was used (halved below one half, doubled otherwise), so that unused work stays bounded.
            used = self._batch_used / max(1, self._batch_used + len(self._objects))
            self._batch_size = max(1, self._batch_size // 2) if used < 0.5 else min(
                self.OBJECT_BATCH, 2 * self._batch_size)
        else:
            self._batch_size = min(self.OBJECT_BATCH, 2 * self._batch_size)
        batch = following[: self.OBJECT_BATCH if token in self._expected else self._batch_size]
        try:
            objects = object_timelines(self.reader.log_frames(window.log_name), [w.current_index for w in batch],
                                       self.horizon_s)
        except DataError:
            return None
        self._objects = {w.token: o for w, o in zip(batch[1:], objects[1:], strict=True)}
        self._batch_used = 0
        return objects[0]

    def put(self, scenes: Sequence[ScoringScene]) -> None:
        """Store scenes (each through a temporary file) and record them in their logs' indexes (one write per
        log)."""
        by_log: dict[str, dict[str, str]] = {}
        for scene in scenes:
            scene.save(self.path_of(scene.log_name, scene.token))
            by_log.setdefault(scene.log_name, {})[scene.token] = scene.fingerprint
        for log_name, fps in by_log.items():
            self._record(log_name, fps)

    def index(self) -> dict[str, dict[str, str]]:
        """``log_name -> {token: fingerprint}`` of every scene written, from the per-log index files."""
        out: dict[str, dict[str, str]] = {}
        for p in sorted(self.cache_dir.glob(f"*/{self.INDEX}")):
            out[p.parent.name] = self._read_index(p)
        return out

    @staticmethod
    def _read_index(path: Path) -> dict[str, str]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # unreadable index: the .npz files and their fingerprints stay authoritative
        tokens = data.get("tokens", {}) if isinstance(data, dict) else {}
        return {str(k): str(v) for k, v in tokens.items()} if isinstance(tokens, dict) else {}

    def _record(self, log_name: str, fingerprints: dict[str, str]) -> None:
        path = self.cache_dir / log_name / self.INDEX
        # Processes building parts of one log at once take turns (read, update, write) under a lock file.
        with _locked(path.with_name(self.INDEX + ".lock")):
            tokens = self._read_index(path)
            tokens.update(fingerprints)
            atomic_write_text(path, json.dumps({"log_name": log_name, "tokens": dict(sorted(tokens.items()))},
                                                indent=1) + "\n")


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``fcntl.flock``) held for the block; no lock where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: processes may then drop each other's index entries (the .npz stay)
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
