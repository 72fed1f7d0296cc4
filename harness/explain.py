"""Why did this scene score what it did? The data behind ``lead-bench explain`` pictures.

Two typed explanations, each built by a pure function from a scene and a plan, so tests check the data and
``harness.explain_plot`` only draws it:

- :class:`SceneExplanation` (NAVSIM): the map around the ego (drivable area, lanes and connectors, red
  lights), route centerline, every object's box over the horizon, the submitted trajectory, the simulated ego
  footprints with the ones that broke a rule highlighted (:class:`Highlight`), PDM-Closed's reference and
  the human trajectory, every sub-score, the at-fault reason and the comfort signals against their bounds.
  The plan is simulated exactly as ``harness.navsim_eval.score_plans`` does and scored by
  ``metrics.pdms.score_proposals``; the per-step evidence comes from ``metrics.pdms_explain``, whose
  sub-scores must equal the scorer's (checked here: a mismatch raises rather than draw a wrong story).
- :class:`WaymoExplanation`: the rater trajectories, their trust regions at 3 s and 5 s, the prediction and
  the score each horizon got (``metrics.rfs.rater_feedback_score``).

Everything is drawn in the ego frame at t = 0: x forward, y left, metres, origin at the rear axle.
``explain_navsim_run`` / ``explain_waymo_run`` read a run directory (``harness.runner`` / ``waymo_runner``
layout) and its data roots from ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from harness.errors import DataError
from harness.map_query import MapLayer
from harness.scoring_scene import SCORING_STEP_S, ObjectType, ScoringScene
from harness.trajectory import Trajectory
from metrics.pdms import NUM_STATES, ProposalScores, score_proposals
from metrics.pdms_explain import PDMSEvidence, explain_proposals

F64 = npt.NDArray[np.float64]

#: Rules a highlight can mark, in the panel's order.
RULES = ("NC", "DAC", "DDC", "TTC", "red light")
_LAYER_KIND = {int(MapLayer.ROADBLOCK): "roadblock", int(MapLayer.LANE): "lane",
               int(MapLayer.LANE_CONNECTOR): "lane_connector", int(MapLayer.INTERSECTION): "intersection",
               int(MapLayer.CARPARK_AREA): "carpark"}


# --- NAVSIM ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapShape:
    """One map polygon in the ego frame. ``kind``: roadblock, lane, lane_connector, intersection, carpark or
    red_light (a lane connector with a traffic light that is red at some step of the 4 s)."""

    kind: str
    xy: F64
    on_route: bool = False
    red_steps: tuple[int, ...] = ()


@dataclass(frozen=True)
class ObjectView:
    """An object's box corners over the horizon, ego frame: ``corners_xy (T, 4, 2)``, ``present (T,)``."""

    token: str
    kind: str
    corners_xy: F64
    present: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Highlight:
    """Footprints (or projections) that broke a rule.

    Attributes:
        rule: one of ``RULES``.
        steps: the state indices concerned (t = step * 0.1 s).
        polygons_xy: ``(n, 4, 2)`` the ego polygons to highlight (projected ones for TTC), ego frame.
        points_xy: ``(m, 2)`` points to mark (the corners off the road), ego frame; may be empty.
        label: a sentence for the legend and panel.
    """

    rule: str
    steps: tuple[int, ...]
    polygons_xy: F64
    points_xy: F64
    label: str


@dataclass(frozen=True)
class ScoreLine:
    """One sub-score: its short name, the value recomputed here, the value in the run's rows, a note."""

    short: str
    column: str
    value: float
    run_value: float
    note: str = ""


@dataclass(frozen=True)
class ComfortView:
    """One comfort signal over the 41 states and its strict bounds."""

    name: str
    time_s: F64
    values: F64
    low: float
    high: float
    unit: str
    ok: bool


@dataclass(frozen=True)
class CameraView:
    name: str
    image: npt.NDArray[np.uint8]


@dataclass(frozen=True)
class SceneExplanation:
    """Everything the NAVSIM picture shows (module docstring); all coordinates in the ego frame at t = 0.

    Attributes:
        token, log_name, title: identity and the picture's title.
        map_shapes: drivable map (and red-light connectors) within the scene's 100 m.
        centerline_xy: ``(K, 2)`` PDM-Closed's route centerline.
        objects: every object's boxes over t = 0 .. 4 s (what NC checks; TTC looks 0.9 s further).
        submitted_xy: ``(N + 1, 2)`` the plan's poses with the origin first.
        simulated_xy: ``(41, 2)`` simulated rear axle; ego_footprints_xy ``(41, 4, 2)`` its footprints.
        pdm_closed_xy: ``(41, 2)`` PDM-Closed's simulated reference; human_xy ``(H + 1, 2)`` or None.
        highlights: the rule-breaking footprints.
        scores: every sub-score and the PDMS; at_fault_reason: NC's sentence ("" if no at-fault contact).
        reasons: one sentence per broken rule.
        comfort: the six comfort signals.
        cameras: front cameras if asked for.
        evidence: the per-step evidence the picture was built from.
    """

    token: str
    log_name: str
    title: str
    map_shapes: tuple[MapShape, ...]
    centerline_xy: F64
    objects: tuple[ObjectView, ...]
    submitted_xy: F64
    simulated_xy: F64
    ego_footprints_xy: F64
    pdm_closed_xy: F64
    human_xy: F64 | None
    highlights: tuple[Highlight, ...]
    scores: tuple[ScoreLine, ...]
    at_fault_reason: str
    reasons: tuple[str, ...]
    comfort: tuple[ComfortView, ...]
    cameras: tuple[CameraView, ...]
    evidence: PDMSEvidence

    def highlight(self, rule: str) -> Highlight | None:
        """The highlight of ``rule`` (one of ``RULES``), or None if the plan kept it."""
        return next((h for h in self.highlights if h.rule == rule), None)

    def score(self, short: str) -> float:
        return next(s.value for s in self.scores if s.short == short)


def _to_ego(xy: npt.ArrayLike, pose: F64) -> F64:
    """Global x, y -> ego frame of ``pose`` (x, y, heading), any leading shape."""
    p = np.asarray(xy, dtype=np.float64) - pose[:2]
    c, s = np.cos(pose[2]), np.sin(pose[2])
    return np.stack([c * p[..., 0] + s * p[..., 1], -s * p[..., 0] + c * p[..., 1]], axis=-1)


def _map_shapes(scene: ScoringScene) -> tuple[MapShape, ...]:
    import shapely

    route = set(scene.route_lane_ids.tolist())
    out = []
    for pid, ptype, poly in zip(scene.drivable_ids.tolist(), scene.drivable_types.tolist(), scene.drivable_polygons):
        kind = _LAYER_KIND.get(int(ptype))
        if kind is None or poly is None or shapely.is_empty(poly):
            continue
        ring = shapely.get_coordinates(shapely.get_exterior_ring(poly))
        out.append(MapShape(kind, _to_ego(ring, scene.ego_pose), on_route=pid in route))
    red = scene.red_light_mask[:NUM_STATES]
    for i, poly in enumerate(scene.light_polygons):
        steps = tuple(int(t) for t in np.flatnonzero(red[:, i]))
        if steps and poly is not None and not shapely.is_empty(poly):
            ring = shapely.get_coordinates(shapely.get_exterior_ring(poly))
            out.append(MapShape("red_light", _to_ego(ring, scene.ego_pose), red_steps=steps))
    return tuple(out)


def _objects(scene: ScoringScene) -> tuple[ObjectView, ...]:
    from metrics.pdm_scoring.geometry import box_corners

    n = min(NUM_STATES, scene.num_steps)
    out = []
    for m, token in enumerate(scene.object_tokens.tolist()):
        present = scene.object_present[:n, m]
        if not present.any():
            continue
        size = scene.object_size_lwh[m]
        corners = box_corners(scene.object_poses[:n, m], size[0] / 2.0, size[1] / 2.0)
        try:
            kind = ObjectType(int(scene.object_types[m])).name.lower()
        except ValueError:
            kind = "object"
        out.append(ObjectView(str(token), kind, _to_ego(corners, scene.ego_pose), present.copy()))
    return tuple(out)


_SHORT = (("NC", "no_at_fault_collisions", "no_at_fault_collisions", "multiplier"),
          ("DAC", "drivable_area_compliance", "drivable_area_compliance", "multiplier"),
          ("DDC", "driving_direction_compliance", "driving_direction_compliance", "weight 0 in v1.1"),
          ("TTC", "time_to_collision_within_bound", "time_to_collision_within_bound", "weight 5"),
          ("C", "comfort", "comfort_score", "weight 2"),
          ("EP", "ego_progress", "ego_progress", "weight 5"),
          ("PDMS", "score", "score", "NC·DAC·(5TTC+5EP+2C)/12"))


def navsim_explanation(
    scene: ScoringScene,
    plan: Trajectory,
    *,
    row: dict[str, Any] | None = None,
    cameras: tuple[CameraView, ...] = (),
    title: str = "",
) -> SceneExplanation:
    """The explanation of ``plan`` on ``scene`` (pure: simulates, scores and explains in memory).

    Args:
        scene: the token's scoring scene with PDM-Closed's trajectory (the metric cache's).
        plan: the submitted trajectory, ego frame at t = 0.
        row: the run's row of this token (its sub-scores are shown beside the recomputed ones).
        cameras: camera images to show beside the picture.
        title: the picture's title (default: token and PDMS).

    Raises:
        DataError: the scene has no PDM-Closed trajectory.
        ValueError: the explanation's sub-scores disagree with the scorer's (a bug: please report it).
    """
    from harness.navsim_eval import initial_state, pdm_closed_reference
    from metrics.pdm_simulation import reference_states_from_local_poses, simulate

    init = initial_state(scene)
    refs = np.stack([pdm_closed_reference(scene),
                     reference_states_from_local_poses(plan.poses, plan.sampling.interval_s, init)])
    from metrics.pdm_simulation import EgoInitialState

    states = simulate(refs, EgoInitialState.stack([init, init]))
    scores = score_proposals(scene, states)
    evidence = explain_proposals(scene, states)
    _check_agreement(scene.token, scores, evidence)
    ev, closed = evidence[1], evidence[0]
    pose = scene.ego_pose
    footprints = _to_ego(ev.corners, pose)
    highlights = _highlights(ev, footprints, pose)
    run_row = row or {}
    lines = tuple(ScoreLine(short, col, float(getattr(ev, attr)), float(run_row.get(col, np.nan)), note)
                  for short, col, attr, note in _SHORT)
    at_fault = ev.at_fault_contact.reason if ev.at_fault_contact else ""
    reasons = tuple(h.label for h in highlights)
    human = None
    if scene.human_future_local is not None:
        human = np.vstack([[0.0, 0.0], np.asarray(scene.human_future_local)[:, :2]])
    t = np.arange(NUM_STATES) * SCORING_STEP_S
    comfort = tuple(ComfortView(c.name, t, c.values, c.low, c.high, c.unit, c.ok) for c in ev.comfort)
    return SceneExplanation(
        token=scene.token, log_name=scene.log_name,
        title=title or f"{scene.token}  PDMS {100 * ev.score:.1f}",
        map_shapes=_map_shapes(scene), centerline_xy=_to_ego(scene.centerline[:, :2], pose),
        objects=_objects(scene), submitted_xy=np.vstack([[0.0, 0.0], plan.xy]),
        simulated_xy=_to_ego(ev.states[:, :2], pose), ego_footprints_xy=footprints,
        pdm_closed_xy=_to_ego(closed.states[:, :2], pose), human_xy=human, highlights=highlights,
        scores=lines, at_fault_reason=at_fault, reasons=reasons, comfort=comfort, cameras=cameras, evidence=ev,
    )


def _check_agreement(token: str, scores: ProposalScores, evidence: tuple[PDMSEvidence, ...]) -> None:
    for p, ev in enumerate(evidence):
        got = (ev.no_at_fault_collisions, ev.drivable_area_compliance, ev.driving_direction_compliance,
               ev.time_to_collision_within_bound, ev.comfort_score, ev.score)
        want = (scores.no_at_fault_collisions[p], scores.drivable_area_compliance[p],
                scores.driving_direction_compliance[p], scores.time_to_collision_within_bound[p],
                scores.comfort[p], scores.score[p])
        if not np.allclose(got, want, rtol=0, atol=1e-9):
            raise ValueError(f"token {token}: the explanation's sub-scores {got} differ from the scorer's {want}; "
                             "please report this scene")


def _highlights(ev: PDMSEvidence, footprints: F64, pose: F64) -> tuple[Highlight, ...]:
    out = []
    empty = np.zeros((0, 2))
    c = ev.at_fault_contact
    if c is not None:
        out.append(Highlight("NC", (c.step,), footprints[[c.step]], empty, c.reason))
    if ev.off_road_steps:
        steps = ev.off_road_steps
        off = ~ev.corner_on_road[list(steps)]  # (n, 4)
        pts = footprints[list(steps)][off]
        first = steps[0]
        out.append(Highlight("DAC", steps, footprints[list(steps)], pts,
                             f"off the drivable area at {len(steps)} step(s) from t={first * SCORING_STEP_S:.1f}s "
                             f"({int(off[0].sum())} corner(s) out)"))
    if ev.driving_direction_compliance < 1.0 and ev.oncoming_stretch:
        steps = ev.oncoming_stretch
        out.append(Highlight("DDC", steps, footprints[list(steps)], empty,
                             f"{float(np.max(ev.oncoming_window_m)):.1f} m against traffic within 1 s "
                             f"(DDC {ev.driving_direction_compliance:g}; weight 0 in v1.1)"))
    v = ev.ttc_violation
    if v is not None:
        out.append(Highlight("TTC", (v.step,), _to_ego(v.ego_polygon_xy, pose)[None], empty, v.reason))
    if ev.red_light_steps:
        steps = ev.red_light_steps
        out.append(Highlight("red light", steps, footprints[list(steps)], empty,
                             f"enters a red-light connector at t={steps[0] * SCORING_STEP_S:.1f}s (not scored by "
                             "PDMS v1.1; EPDMS's TLC counts it)"))
    return tuple(out)


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the run's configuration ({exc})", path=path) from exc


def _run_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the run's summary ({exc})", path=path) from exc


def _run_row(run_dir: Path, token: str) -> dict[str, Any]:
    path = run_dir / "rows.parquet"
    try:
        rows = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the run's rows ({exc})", path=path) from exc
    hit = rows[rows["token"].astype(str) == token]
    if hit.empty:
        raise DataError(f"token {token} is not in this run ({len(rows)} rows; e.g. {rows['token'].head(3).tolist()})",
                        path=path)
    return hit.iloc[0].to_dict()


class NavsimRunScenes:
    """Opens a NAVSIM run's metric cache and plans once, then explains tokens one by one."""

    def __init__(self, run_dir: str | Path) -> None:
        from adapters.navsim.reader import NavsimReader
        from adapters.navsim.scene_filter import SceneFilter
        from harness.navsim_eval import CacheSpec
        from harness.runner import read_plans

        self.run_dir = Path(run_dir)
        cfg = _run_config(self.run_dir)
        if cfg.get("benchmark") != "navsim":
            raise DataError(f"not a NAVSIM run (benchmark {cfg.get('benchmark')!r})", path=self.run_dir)
        summary = _run_summary(self.run_dir)
        if summary.get("metric") == "epdms" or "EPDMS" in str(summary.get("scorer", "")):
            raise DataError("explain draws PDMS v1.1 runs; this is an EPDMS run (its explanation is not built yet)",
                            path=self.run_dir)
        missing = [k for k in ("data_root", "maps_root", "cache_dir") if not cfg.get(k)]
        if missing:
            raise DataError(f"config.json lacks {missing}; explain needs the run's data roots", path=self.run_dir)
        split = str(cfg.get("split", "test"))
        filt = SceneFilter(**cfg["scene_filter"]) if isinstance(cfg.get("scene_filter"), dict) else None
        self.data_root = Path(cfg["data_root"])
        self.reader = (NavsimReader(self.data_root, split, scene_filter=filt) if filt
                       else NavsimReader(self.data_root, split))
        spec = CacheSpec(self.data_root, self.reader.split, self.reader.scene_filter, Path(cfg["maps_root"]),
                         Path(cfg["cache_dir"]))
        self.cache = spec.open()
        self.plans = read_plans(self.run_dir)
        self.agent = str(cfg.get("agent", ""))

    def explain(self, token: str, *, cameras: bool = False, row: dict[str, Any] | None = None) -> SceneExplanation:
        row = row if row is not None else _run_row(self.run_dir, token)
        if token not in self.plans:
            raise DataError(f"token {token} has no plan in this run (it failed: {row.get('error')})",
                            path=self.run_dir / "plans.npz")
        scene = self.cache.get(token)
        views: tuple[CameraView, ...] = ()
        if cameras:
            from adapters.navsim.reader import SensorSelection

            sample = self.reader.load(token, SensorSelection(cameras=("CAM_L0", "CAM_F0", "CAM_R0")))
            views = tuple(CameraView(name, cam.load_image()) for name, cam in sample.observation.cameras.items())
        pdms = row.get("score", np.nan)
        title = f"{token} ({self.agent})  PDMS {100 * float(pdms):.1f}" if pdms == pdms else token
        return navsim_explanation(scene, self.plans[token], row=row, cameras=views, title=title)


def explain_navsim_run(run_dir: str | Path, token: str, *, cameras: bool = False) -> SceneExplanation:
    """The explanation of ``token`` in the NAVSIM run at ``run_dir`` (its config names the data and cache).

    Raises:
        DataError: not a NAVSIM run, unknown token, a token that failed (no plan), or missing data.
    """
    return NavsimRunScenes(run_dir).explain(token, cameras=cameras)


# --- Waymo -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustRegion:
    """A rater's trust region at one horizon, ego frame.

    Attributes:
        rater: the rater slot; horizon_s: 3 or 5.
        center_xy: ``(2,)`` the rater's point at the horizon; lon_axis ``(2,)`` unit longitudinal axis.
        lat_half_m, lng_half_m: half sizes across and along.
        corners_xy: ``(4, 2)`` the rectangle.
        normalized_distance: the prediction's ``d`` (<= 1: inside), from ``metrics.rfs``.
    """

    rater: int
    horizon_s: int
    center_xy: F64
    lon_axis: F64
    lat_half_m: float
    lng_half_m: float
    corners_xy: F64
    normalized_distance: float

    @property
    def contains_prediction(self) -> bool:
        return bool(self.normalized_distance <= 1.0)


@dataclass(frozen=True)
class WaymoExplanation:
    """Everything the Waymo picture shows, ego frame at t = 0 (x forward, y left, metres).

    Attributes:
        frame_name, title.
        raters_xy: per used rater ``(T, 2)``; rater_scores their labels.
        prediction_xy: ``(20, 2)``; past_xy ``(16, 2)``; future_xy ``(20, 2)`` or None.
        trust_regions: every (rater, horizon).
        horizon_scores: ``(2,)`` best decayed rater score at 3 s and 5 s; best_rater ``(2,)``.
        raw_score: mean of the horizons; score: the frame's RFS (floored at 4 outside every trust region).
        fully_inside: one rater's region holds the prediction at both horizons.
        initial_speed_mps: the speed that scaled the regions.
        run_rfs: the run's row value (NaN if not given).
    """

    frame_name: str
    title: str
    raters_xy: tuple[F64, ...]
    rater_scores: F64
    prediction_xy: F64
    past_xy: F64
    future_xy: F64 | None
    trust_regions: tuple[TrustRegion, ...]
    horizon_scores: F64
    best_rater: npt.NDArray[np.int64]
    raw_score: float
    score: float
    fully_inside: bool
    initial_speed_mps: float
    run_rfs: float


def _lon_axis(xy: F64, idx: int) -> F64:
    """The rater's longitudinal axis at point ``idx``: backward difference, last non-zero one, else (1, 0)."""
    pts = np.vstack([[0.0, 0.0], xy])
    for i in range(idx + 1, 0, -1):
        d = pts[i] - pts[i - 1]
        n = float(np.hypot(*d))
        if n > 0:
            return d / n
    return np.array([1.0, 0.0])


def waymo_explanation(labels: Any, prediction_xy: npt.ArrayLike, *, row: dict[str, Any] | None = None
                      ) -> WaymoExplanation:
    """The explanation of one frame's prediction (pure).

    Args:
        labels: the frame's ``adapters.waymo.labels.FrameLabels`` (rater trajectories and scores).
        prediction_xy: ``(20, 2)`` ego-frame positions at t = 0.25 .. 5 s.
        row: the run's row of this frame.

    Raises:
        DataError: the frame has no rater labels.
    """
    from metrics.rfs import HORIZONS_S, normalize_raters, rater_feedback_score

    if not labels.has_rater_labels:
        raise DataError(f"frame {labels.frame_name} has no rater labels (test split?): nothing to explain")
    pred = np.asarray(prediction_xy, dtype=np.float64).reshape(20, 2)
    raters = labels.rater_trajectories[None]
    mask = np.ones((1, raters.shape[1]), dtype=bool)
    res = rater_feedback_score(pred[None], raters, labels.rater_scores[None], np.array([labels.initial_speed_mps]),
                               rater_mask=mask, rater_num_points=labels.rater_lengths[None])
    norm = normalize_raters(raters, labels.rater_scores[None], rater_mask=mask,
                            rater_num_points=labels.rater_lengths[None])
    regions = []
    used = np.flatnonzero(norm.used[0])
    for r in used:
        xy = norm.xy[0, r]
        for h, horizon in enumerate(HORIZONS_S):
            idx = horizon * 4 - 1
            lon = _lon_axis(xy, idx)
            lat = np.array([-lon[1], lon[0]])
            a, b = float(res.lng_threshold_m[0, h]), float(res.lat_threshold_m[0, h])
            c = xy[idx]
            corners = np.array([c + a * lon + b * lat, c - a * lon + b * lat, c - a * lon - b * lat,
                                c + a * lon - b * lat])
            regions.append(TrustRegion(int(r), int(horizon), c.copy(), lon, b, a, corners,
                                       float(res.normalized_distance[0, r, h])))
    run_rfs = float((row or {}).get("rfs", np.nan))
    return WaymoExplanation(
        frame_name=labels.frame_name, title=f"{labels.frame_name}  RFS {float(res.score[0]):.2f}",
        raters_xy=tuple(norm.xy[0, r].copy() for r in used), rater_scores=norm.scores[0, used].copy(),
        prediction_xy=pred, past_xy=np.asarray(labels.past_xy), future_xy=labels.future_xy,
        trust_regions=tuple(regions), horizon_scores=res.horizon_scores[0].copy(),
        best_rater=res.best_rater[0].copy(), raw_score=float(res.raw_score[0]), score=float(res.score[0]),
        fully_inside=bool(res.fully_inside_trust_region[0]), initial_speed_mps=float(labels.initial_speed_mps),
        run_rfs=run_rfs,
    )


class WaymoRunFrames:
    """Opens a Waymo run's predictions and reader once, then explains frames one by one."""

    def __init__(self, run_dir: str | Path) -> None:
        from adapters.waymo.reader import WaymoReader
        from harness.waymo_runner import read_predictions

        self.run_dir = Path(run_dir)
        cfg = _run_config(self.run_dir)
        if cfg.get("benchmark") != "waymo" or not cfg.get("data_root"):
            raise DataError("not a Waymo run with a data root in config.json", path=self.run_dir)
        self.predictions, _, split = read_predictions(self.run_dir)
        self.reader = WaymoReader(Path(cfg["data_root"]), str(cfg.get("split", split)), files=cfg.get("files"),
                                  skip_corrupt=bool(cfg.get("skip_corrupt", False)))

    def explain(self, frame: str, *, row: dict[str, Any] | None = None) -> WaymoExplanation:
        row = row if row is not None else _run_row(self.run_dir, frame)
        if frame not in self.predictions:
            raise DataError(f"frame {frame} has no prediction in this run ({row.get('error')})",
                            path=self.run_dir / "predictions.npz")
        return waymo_explanation(self.reader.labels(frame), self.predictions[frame], row=row)


def explain_waymo_run(run_dir: str | Path, frame: str) -> WaymoExplanation:
    """The explanation of ``frame`` in the Waymo run at ``run_dir``."""
    return WaymoRunFrames(run_dir).explain(frame)
