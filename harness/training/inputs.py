"""Canonical samples -> TFv6 inputs and targets (the model never sees a file format, a rig or a source).

Per sample (numpy, in a DataLoader worker):

- :func:`encode_observation`: the rig's cameras cropped/resized into one stitched RGB strip (crops from each
  camera's calibration, :mod:`harness.training.views`), the LiDAR histogram when the model is not latent,
  signed longitudinal speed and acceleration, the 4-way command one-hot, target points, the past ego poses
  resampled at fixed times (``past_interval_s``) with a validity mask, and the padded radar returns when the
  model has the radar detector (:mod:`harness.training.radar`, which also builds its labels).
- :func:`encode_targets`: the logged future resampled at the model's waypoint times with a per-time validity
  mask (times beyond the logged horizon are masked, never extrapolated), headings, CenterNet and BEV-semantic
  labels for the head of the sample's own source, image semantics and depth on the stitched strip, and the
  expert's target speed and brake flag where the source has them (CARLA/LEAD; NAVSIM and Waymo have none, as in
  LEAD, so their target-speed loss is masked).

An optional :class:`ViewAugment` (a small lateral shift and yaw of the ego) moves everything consistently:
images are re-projected, and every position, heading, velocity, box, raster and point is expressed in the
displaced ego frame, so the targets teach the policy to return to the logged path (LEAD's recovery
supervision, done analytically instead of by re-rendering). Colour augmentation touches images only.

:func:`collate` stacks items into :class:`harness.model.io.ModelInputs` and
:class:`harness.model.io.ModelTargets` with explicit validity masks (a label a sample lacks is zeros with
``valid = False``, never a silent zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image

from harness.errors import DataError
from harness.model.io import (
    BEVSemanticTarget,
    BoxTarget,
    DepthTarget,
    ImageSemanticTarget,
    ModelInputs,
    ModelTargets,
    RadarTarget,
    TFv6Config,
)
from harness.training.labels import (
    BEV_LABEL_DTYPE,
    BoxLabels,
    Grid,
    box_labels,
    carla_sim_to_real_bev,
    head_classes,
    lidar_histogram,
    resample_raster,
)
from harness.training.radar import encode_radar_points, radar_detection_labels
from harness.training.views import (
    RigSpec,
    ViewAugment,
    camera_view,
    get_rig,
    render_slot,
    render_slot_labels,
    slot_depth,
)
from harness.trajectory import resample_poses
from harness.types import Camera, Observation, Sample

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class InputSpec:
    """What the pipeline builds for one model configuration.

    Args:
        model: the TFv6 configuration (image size, BEV raster, waypoints, status tokens, heads).
        rigs: source name (``"navsim"``, ``"waymo"``, ``"carla"``) -> rig name of :data:`views.RIGS`.
        waypoint_interval_s: spacing of the predicted waypoints (the first at this time).
        past_interval_s: spacing of the past-pose tokens (the newest at ``-past_interval_s``).
        carla_leaderboard_mode: LEAD's ``carla_leaderboard_mode``: CARLA labels keep their full classes; False
            (mixed / sim-to-real training) applies LEAD's sim-to-real relabels to CARLA's BEV semantics and
            boxes (:func:`labels.carla_sim_to_real_bev`, :func:`labels.head_classes`).
    """

    model: TFv6Config
    rigs: Mapping[str, str] = field(default_factory=lambda: {"navsim": "navsim_4cam", "waymo": "waymo_front_3cam",
                                                             "carla": "navsim_4cam"})
    waypoint_interval_s: float = 0.5
    past_interval_s: float = 0.5
    carla_leaderboard_mode: bool = True

    def rig(self, source: str) -> RigSpec:
        if source not in self.rigs:
            raise DataError(f"no camera rig configured for source {source!r} (rigs: {dict(self.rigs)})")
        return get_rig(self.rigs[source])

    @property
    def waypoint_times_s(self) -> npt.NDArray[np.float64]:
        return self.waypoint_interval_s * np.arange(1, self.model.num_waypoints + 1)

    @property
    def bev_grid(self) -> Grid:
        return Grid(self.model.bev_extent_m, 1.0 / self.model.bev_pixels_per_m)

    @property
    def box_grid(self) -> Grid:
        return Grid(self.model.bev_extent_m, self.model.bev_down_sample / self.model.bev_pixels_per_m)


@dataclass(frozen=True)
class AugmentSpec:
    """Training augmentation: viewpoint (probability, uniform shift and yaw bounds) and colour."""

    view_prob: float = 0.0
    max_shift_m: float = 1.0
    max_yaw_deg: float = 5.0
    colour_prob: float = 0.0

    def draw(self, rng: np.random.Generator) -> tuple[ViewAugment | None, bool]:
        view = None
        if self.view_prob > 0 and rng.random() < self.view_prob:
            view = ViewAugment(float(rng.uniform(-self.max_shift_m, self.max_shift_m)),
                               float(np.deg2rad(rng.uniform(-self.max_yaw_deg, self.max_yaw_deg))))
        return view, bool(self.colour_prob > 0 and rng.random() < self.colour_prob)


@dataclass(frozen=True)
class EncodedObservation:
    image: U8  # (3, H, W)
    speed_mps: float
    acceleration_mps2: float
    command: F32  # (4,)
    lidar: F32 | None = None  # (C, Hb, Wb)
    target_points: F32 | None = None  # (K, 2)
    past_poses: F32 | None = None  # (Tp, 3)
    past_valid: npt.NDArray[np.bool_] | None = None  # (Tp,)
    radar: F32 | None = None  # (S * P, 5) radar returns, padded (harness.training.radar)


@dataclass(frozen=True)
class EncodedTargets:
    waypoints: F32  # (N, 2)
    waypoints_valid: npt.NDArray[np.bool_]  # (N,)
    headings: F32  # (N,)
    headings_valid: npt.NDArray[np.bool_]
    bev: Mapping[str, npt.NDArray[np.int8]] = field(default_factory=dict)  # head -> (H, W) int8, -1 ignore
    boxes: Mapping[str, BoxLabels] = field(default_factory=dict)
    image_semantic: npt.NDArray[np.int64] | None = None  # (H, W) on the stitched image, -1 ignore
    depth_m: F32 | None = None  # (H, W), NaN = no label
    route: F32 | None = None  # (R, 2)
    target_speed_mps: float | None = None  # the expert's target speed; None = no label
    brake: bool = False  # the expert brakes (forces target-speed class 0, LEAD's encode_two_hot)
    radar: F32 | None = None  # (Q, 4) radar-detection labels; None = no label (harness.training.radar)


@dataclass(frozen=True)
class TrainItem:
    source: str
    token: str
    obs: EncodedObservation
    targets: EncodedTargets


# --- observation ----------------------------------------------------------------------------------------


def _colour_jitter(img: U8, rng: np.random.Generator) -> U8:
    """Brightness, contrast, saturation and Gaussian noise, each drawn per image."""
    x = img.astype(np.float32)
    x = x * rng.uniform(0.7, 1.3)
    mean = x.mean()
    x = (x - mean) * rng.uniform(0.7, 1.3) + mean
    grey = x.mean(axis=-1, keepdims=True)
    x = (x - grey) * rng.uniform(0.6, 1.4) + grey
    x = x + rng.normal(0.0, rng.uniform(0.0, 6.0), size=x.shape).astype(np.float32)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def stitch(cameras: Mapping[str, Camera], rig: RigSpec, height: int, width: int, aug: ViewAugment | None = None,
           images: Mapping[str, U8] | None = None) -> U8:
    """The rig's cameras side by side: ``(height, width, 3)`` uint8."""
    out = np.zeros((height, width, 3), np.uint8)
    for (x0, w), name in zip(rig.slots(width), rig.cameras):
        cam = _camera(cameras, name, rig)
        img = images[name] if images is not None and name in images else cam.load_image()
        out[:, x0:x0 + w] = render_slot(img, cam, camera_view(cam, w, height, rig.horizon_fraction), aug)
    return out


def _camera(cameras: Mapping[str, Camera], name: str, rig: RigSpec) -> Camera:
    cam = cameras.get(name)
    if cam is None:
        raise DataError(f"rig {rig.name} needs camera {name}; the sample has {sorted(cameras)}")
    return cam


def past_poses(obs: Observation, num: int, interval_s: float, aug: ViewAugment | None
               ) -> tuple[F32, npt.NDArray[np.bool_]]:
    """``num`` past poses at ``-num*interval .. -interval`` s (oldest first) and their validity."""
    q = -interval_s * np.arange(num, 0, -1, dtype=np.float64)
    hp, ht = obs.ego.history_poses, obs.ego.history_times_s
    if hp.shape[0] == 0:
        return np.zeros((num, 3), np.float32), np.zeros(num, bool)
    poses = resample_poses(hp, ht, q, include_origin=False, hold_last=True)
    valid = q >= ht[0] - 1e-6
    if aug is not None:
        poses = np.column_stack([aug.points_xy(poses[:, :2]), aug.headings(poses[:, 2])])
    poses = np.where(valid[:, None], poses, 0.0)
    return poses.astype(np.float32), valid


def encode_observation(obs: Observation, source: str, spec: InputSpec, aug: ViewAugment | None = None,
                       colour_rng: np.random.Generator | None = None,
                       images: Mapping[str, U8] | None = None) -> EncodedObservation:
    """The model's view of one observation (``images`` overrides camera loading, e.g. a cache)."""
    cfg = spec.model
    img = stitch(obs.cameras, spec.rig(source), cfg.image_height, cfg.image_width, aug, images)
    if colour_rng is not None:
        img = _colour_jitter(img, colour_rng)
    vel, acc = obs.ego.velocity_mps, obs.ego.acceleration_mps2
    if aug is not None:
        vel, acc = aug.vectors_xy(vel), aug.vectors_xy(acc)
    lidar = None
    if not cfg.latent:
        if obs.lidar is None:
            raise DataError(f"the model takes a LiDAR histogram but the {source} observation has no point cloud")
        xyz = obs.lidar.xyz.astype(np.float64)
        if aug is not None:
            xyz = np.column_stack([aug.points_xy(xyz[:, :2]), xyz[:, 2]])
        lidar = lidar_histogram(xyz, spec.bev_grid, cfg.lidar_channels)
    tps = None
    if cfg.num_target_points:
        tps = np.zeros((cfg.num_target_points, 2), np.float32)
        have = obs.navigation.target_points_xy
        if have is not None and len(have):
            k = min(len(have), cfg.num_target_points)
            xy = aug.points_xy(have[:k]) if aug is not None else have[:k]
            tps[:k] = xy
    pp = pv = None
    if cfg.num_past_poses:
        pp, pv = past_poses(obs, cfg.num_past_poses, spec.past_interval_s, aug)
    radar = encode_radar_points(obs.radar, cfg, aug) if cfg.radar else None
    return EncodedObservation(np.ascontiguousarray(img.transpose(2, 0, 1)), float(vel[0]), float(acc[0]),
                              obs.navigation.command.one_hot().astype(np.float32), lidar, tps, pp, pv, radar)


# --- targets --------------------------------------------------------------------------------------------


def encode_targets(sample: Sample, source: str, spec: InputSpec, aug: ViewAugment | None = None) -> EncodedTargets:
    """Labels of one sample for the heads of its own source (see the module docstring)."""
    cfg = spec.model
    n = cfg.num_waypoints
    q = spec.waypoint_times_s
    wp = np.zeros((n, 2), np.float32)
    hd = np.zeros(n, np.float32)
    valid = np.zeros(n, bool)
    fut = sample.targets.future
    if fut is not None:
        poses = resample_poses(fut.poses, fut.times_s, q, hold_last=True)
        valid = q <= fut.times_s[-1] + 1e-6
        if aug is not None:
            poses = np.column_stack([aug.points_xy(poses[:, :2]), aug.headings(poses[:, 2])])
        wp = np.where(valid[:, None], poses[:, :2], 0.0).astype(np.float32)
        hd = np.where(valid, poses[:, 2], 0.0).astype(np.float32)
    # Waymo's future has positions only (its headings are derived from them), so they do not supervise headings.
    heading_valid = valid & (source != "waymo")
    oa = aug.original_from_augmented() if aug is not None else None
    bev: dict[str, npt.NDArray[np.int8]] = {}
    heads = dict(cfg.bev_semantic_classes)
    if source in heads and sample.targets.bev is not None:
        raster = sample.targets.bev
        if len(raster.vocabulary) != heads[source]:
            raise DataError(f"{source} BEV raster has {len(raster.vocabulary)} classes, the model's {source} head "
                            f"{heads[source]}", token=sample.meta.token)
        if source == "carla" and not spec.carla_leaderboard_mode:
            raster = replace(raster, classes=carla_sim_to_real_bev(raster.classes))
        bev[source] = resample_raster(raster, spec.bev_grid, oa)
    boxes: dict[str, BoxLabels] = {}
    box_heads = dict(cfg.box_classes)
    if source in box_heads and sample.targets.boxes is not None:
        b = sample.targets.boxes
        xy, yaw, v = b.center_xyz[:, :2], b.yaw_rad, np.nan_to_num(b.velocity_xy_mps)
        if aug is not None:
            xy, yaw, v = aug.points_xy(xy), aug.headings(yaw), aug.vectors_xy(v)
        boxes[source] = box_labels(xy, b.size_lwh[:, :2], yaw, np.hypot(v[:, 0], v[:, 1]), head_classes(b, source, spec.carla_leaderboard_mode),
                                   spec.box_grid, box_heads[source], cfg.num_yaw_bins)
    sem = depth = None
    if cfg.image_semantic_classes and sample.targets.semantics:
        sem = _stitch_labels(sample, source, spec, aug, "semantics")
    if cfg.predict_depth and sample.targets.depth_m:
        depth = _stitch_labels(sample, source, spec, aug, "depth").astype(np.float32)
    route = None
    if cfg.predict_route and sample.observation.navigation.route_xy is not None:
        route = _route_points(sample.observation.navigation.route_xy, cfg.num_route_points, aug)
    speed = sample.targets.target_speed_mps if cfg.predict_target_speed else None
    brake = bool(sample.targets.brake) if speed is not None else False
    radar = None
    if cfg.radar and sample.observation.radar is not None and sample.targets.boxes is not None:
        radar = radar_detection_labels(sample.targets.boxes, sample.observation.radar, cfg, aug)
    return EncodedTargets(wp, valid, hd, heading_valid, bev, boxes, sem, depth, route, speed, brake, radar)


def _route_points(route_xy: npt.NDArray[np.float64], num: int, aug: ViewAugment | None) -> F32 | None:
    """``num`` route points at 2.5 m, then every 1 m of arc length (LEAD's route target), or None if too short."""
    xy = aug.points_xy(route_xy) if aug is not None else np.asarray(route_xy)
    if len(xy) < 2:
        return None
    s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    want = 2.5 + np.arange(num, dtype=np.float64)
    if s[-1] < want[-1]:
        return None
    return np.column_stack([np.interp(want, s, xy[:, 0]), np.interp(want, s, xy[:, 1])]).astype(np.float32)


def _stitch_labels(sample: Sample, source: str, spec: InputSpec, aug: ViewAugment | None, kind: str) -> npt.NDArray:
    cfg = spec.model
    rig = spec.rig(source)
    h, w = cfg.image_height, cfg.image_width
    out = np.full((h, w), -1 if kind == "semantics" else np.nan, np.float64)
    cams = sample.observation.cameras
    for (x0, sw), name in zip(rig.slots(w), rig.cameras):
        cam = _camera(cams, name, rig)
        view = camera_view(cam, sw, h, rig.horizon_fraction)
        if kind == "semantics" and name in sample.targets.semantics:
            out[:, x0:x0 + sw] = render_slot_labels(sample.targets.semantics[name], cam, view, aug, -1)
        elif kind == "depth" and name in sample.targets.depth_m:
            out[:, x0:x0 + sw] = slot_depth(sample.targets.depth_m[name], cam, view, aug)
    return out.astype(np.int64) if kind == "semantics" else out


def encode_sample(sample: Sample, spec: InputSpec, aug: AugmentSpec | None = None,
                  rng: np.random.Generator | None = None, images: Mapping[str, U8] | None = None) -> TrainItem:
    """One training item (observation and targets under the same augmentation draw)."""
    source = sample.meta.source.value
    view, colour = (aug.draw(rng) if aug is not None and rng is not None else (None, False))
    obs = encode_observation(sample.observation, source, spec, view, rng if colour else None, images)
    return TrainItem(source, sample.meta.token, obs, encode_targets(sample, source, spec, view))


# --- batches --------------------------------------------------------------------------------------------


def collate_inputs(obs: Sequence[EncodedObservation], cfg: TFv6Config) -> ModelInputs:
    """Stack encoded observations into one :class:`ModelInputs` (CPU tensors)."""
    def f32(x: object) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32))

    lidar = torch.from_numpy(np.stack([o.lidar for o in obs])) if not cfg.latent else None
    tps = f32([o.target_points for o in obs]) if cfg.num_target_points else None
    pp = f32([o.past_poses for o in obs]) if cfg.num_past_poses else None
    pv = torch.from_numpy(np.stack([o.past_valid for o in obs])) if cfg.num_past_poses else None
    radar = None
    if cfg.radar:
        pad = encode_radar_points(None, cfg)
        radar = torch.from_numpy(np.stack([pad if o.radar is None else o.radar for o in obs]))
    return ModelInputs(images=torch.from_numpy(np.stack([o.image for o in obs])),
                       speed_mps=f32([o.speed_mps for o in obs]),
                       acceleration_mps2=f32([o.acceleration_mps2 for o in obs]),
                       command=f32([o.command for o in obs]), lidar_bev=lidar, target_points_m=tps,
                       past_poses=pp, past_valid=pv, radar_points=radar)


def collate(items: Sequence[TrainItem], cfg: TFv6Config) -> tuple[ModelInputs, ModelTargets]:
    """Stack training items; every label gets its per-sample validity mask."""
    tg = [it.targets for it in items]

    def stack(xs: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(xs))

    def mask(flags: Sequence[bool]) -> torch.Tensor:
        return torch.tensor(list(flags), dtype=torch.bool)

    bev = {}
    for head, _ in cfg.bev_semantic_classes:
        have = [head in t.bev for t in tg]
        if any(have):
            zeros = np.full((cfg.bev_height_px, cfg.bev_width_px), -1, BEV_LABEL_DTYPE)
            bev[head] = BEVSemanticTarget(stack([t.bev.get(head, zeros) for t in tg]), mask(have))
    boxes = {}
    for head, ncls in cfg.box_classes:
        have = [head in t.boxes for t in tg]
        if any(have):
            boxes[head] = _stack_boxes([t.boxes.get(head) for t in tg], cfg, ncls)
    sem = depth = None
    if cfg.image_semantic_classes and any(t.image_semantic is not None for t in tg):
        blank = np.full((cfg.image_height, cfg.image_width), -1, np.int64)
        sem = ImageSemanticTarget(stack([blank if t.image_semantic is None else t.image_semantic for t in tg]),
                                  mask([t.image_semantic is not None for t in tg]))
    if cfg.predict_depth and any(t.depth_m is not None for t in tg):
        blank_d = np.full((cfg.image_height, cfg.image_width), np.nan, np.float32)
        depth = DepthTarget(stack([blank_d if t.depth_m is None else t.depth_m for t in tg]),
                            mask([t.depth_m is not None for t in tg]))
    route = route_valid = None
    if cfg.predict_route:
        blank_r = np.zeros((cfg.num_route_points, 2), np.float32)
        route = stack([blank_r if t.route is None else t.route for t in tg])
        route_valid = mask([t.route is not None for t in tg])
    speed = brake = speed_valid = None
    if cfg.predict_target_speed:  # present whenever the head is (batches keep one structure); masked per sample
        have = [t.target_speed_mps is not None for t in tg]
        speed = torch.tensor([t.target_speed_mps if h else 0.0 for t, h in zip(tg, have)], dtype=torch.float32)
        brake = mask([t.brake and h for t, h in zip(tg, have)])
        speed_valid = mask(have)
    headings = stack([t.headings for t in tg]) if cfg.predict_headings else None
    radar = None
    if cfg.radar and any(t.radar is not None for t in tg):
        blank_q = np.zeros((cfg.num_radar_queries, 4), np.float32)
        radar = RadarTarget(stack([blank_q if t.radar is None else t.radar for t in tg]),
                            mask([t.radar is not None for t in tg]))
    targets = ModelTargets(
        waypoints_m=stack([t.waypoints for t in tg]), waypoints_valid=stack([t.waypoints_valid for t in tg]),
        headings_rad=headings, headings_valid=stack([t.headings_valid for t in tg]) if headings is not None else None,
        route_m=route, route_valid=route_valid, target_speed_mps=speed, brake=brake, target_speed_valid=speed_valid,
        bev_semantic=bev, boxes=boxes, image_semantic=sem, depth=depth, radar=radar)
    return collate_inputs([it.obs for it in items], cfg), targets


def _stack_boxes(labels: Sequence[BoxLabels | None], cfg: TFv6Config, ncls: int) -> BoxTarget:
    h, w = cfg.grid_shape
    empty = BoxLabels(np.zeros((ncls, h, w), np.float32), np.zeros((2, h, w), np.float32),
                      np.zeros((2, h, w), np.float32), np.zeros((h, w), np.int64), np.zeros((1, h, w), np.float32),
                      np.zeros((h, w), np.float32), np.zeros((1, h, w), np.float32), 0.0)
    ls = [x if x is not None else empty for x in labels]

    def st(name: str) -> torch.Tensor:
        return torch.from_numpy(np.stack([getattr(x, name) for x in ls]))

    return BoxTarget(heatmap=st("heatmap"), size_m=st("size_m"), offset=st("offset"), yaw_class=st("yaw_class"),
                     yaw_res=st("yaw_res"), center_mask=st("center_mask"),
                     num_boxes=torch.tensor([x.num_boxes for x in ls], dtype=torch.float32),
                     valid=torch.tensor([x is not None for x in labels]),
                     velocity_mps=st("velocity_mps") if cfg.box_velocity else None)


def downscaled(cam: Camera, image: U8, factor: int) -> tuple[Camera, U8]:
    """The camera and image reduced by an integer ``factor`` (box filter; intrinsics follow exactly)."""
    if factor <= 1:
        return cam, image
    w, h = cam.width // factor, cam.height // factor
    img = np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BOX))
    sx, sy = w / cam.width, h / cam.height
    k = cam.intrinsics.copy()
    k[0, 0] *= sx
    k[0, 1] *= sx
    k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
    k[1, 1] *= sy
    k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
    small = Camera(cam.name, k, cam.ego_from_camera, w, h, cam.distortion, cam.image_path, loader=lambda: img)
    return small, img
