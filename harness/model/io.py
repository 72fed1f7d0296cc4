"""TFv6's typed interface: configuration, batched inputs, training targets and predictions.

Everything here is a batch of torch tensors already on the model's device; the model knows nothing of file
formats, rigs or sources' on-disk layouts (the input pipeline builds these from canonical samples).

Frames and rasters (one convention, shared with :class:`harness.types.BEVRaster`):

- Positions are in the canonical ego frame: x forward, y left, metres, origin at the rear-axle centre at the
  current time; headings in radians, counter-clockwise. No flip happens anywhere in the model.
- A BEV tensor ``(..., H, W)`` covers ``TFv6Config.bev_extent_m = (x_min, x_max, y_min, y_max)``; row 0 is the
  far front (x max) and column 0 the far left (y max), so the map reads with the ego driving up. The input
  raster has ``bev_pixels_per_m`` pixels per metre; the CenterNet grid is ``bev_down_sample`` times coarser
  (1 m per cell at the defaults).
- Images are RGB, ``(B, 3, H, W)``, values 0..255 (uint8 or float); ImageNet normalisation happens inside
  the model.

Per-sample validity: every label carries a ``valid (B,)`` bool mask (waypoints a ``(B, N)`` mask). A sample
whose mask is False contributes exactly zero to that head's loss and gradient; a loss whose batch has no
valid sample is zero and still differentiable (no host sync is needed to decide that).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace

import torch

Tensor = torch.Tensor

BACKBONES = ("resnet34", "resnet18", "regnety_032", "resnet_tiny")


# --- configuration ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TFv6Config:
    """Every architecture knob of TFv6. Frozen; derive variants with :func:`dataclasses.replace`.

    Per-source perception heads are keyed by a source name (``"carla"``, ``"navsim"``, ...): the label
    spaces differ between sources (CARLA 13 BEV classes vs NAVSIM 7), so each source gets its own head on the
    shared BEV grid (``bev_semantic_classes``, ``box_classes``).
    """

    # backbones (timm names; "resnet_tiny" is a 4-stage ResNet of 1 block per stage, widths 16..128)
    image_backbone: str = "resnet34"
    bev_backbone: str = "resnet34"
    # input geometry
    image_height: int = 270
    image_width: int = 1920
    bev_extent_m: tuple[float, float, float, float] = (-32.0, 32.0, -32.0, 32.0)  # x_min, x_max, y_min, y_max
    bev_pixels_per_m: float = 4.0
    latent: bool = True  # camera-only "latent" mode: the BEV branch gets a constant 2-channel coordinate grid
    lidar_channels: int = 1  # channels of the LiDAR histogram when not latent
    # fusion transformers (one per stage)
    fusion_layers: int = 2
    fusion_heads: int = 4
    fusion_mlp_ratio: int = 4
    fusion_dropout: float = 0.1
    # top-down BEV feature pyramid
    bev_feature_channels: int = 64
    bev_down_sample: int = 4  # the perception grid is the raster / 4 (1 m per cell at 4 px/m)
    # planner
    use_planner: bool = True
    token_dim: int = 256
    planner_layers: int = 6
    planner_heads: int = 8
    planner_ffn_dim: int = 2048
    planner_dropout: float = 0.1
    num_waypoints: int = 8
    predict_headings: bool = True
    num_route_points: int = 0  # 0: no route head
    target_speed_classes_mps: tuple[float, ...] = ()  # empty: no target-speed head
    # status tokens
    use_speed: bool = True
    use_acceleration: bool = True
    use_command: bool = True
    num_target_points: int = 0  # 0..n target-point tokens through one shared encoder
    num_past_poses: int = 0  # past ego poses (x, y, heading), one token each
    max_speed_mps: float = 15.0
    max_acceleration_mps2: float = 4.0
    target_point_scale_m: tuple[float, float] = (200.0, 50.0)
    past_position_scale_m: float = 20.0
    # perception heads
    bev_semantic_classes: tuple[tuple[str, int], ...] = (("navsim", 7),)
    box_classes: tuple[tuple[str, int], ...] = (("navsim", 1),)
    box_velocity: bool = False  # CenterNet velocity channel (only meaningful with a multi-sweep LiDAR)
    num_yaw_bins: int = 12
    image_semantic_classes: int = 0  # 0: no image-semantics head (CARLA: 10)
    predict_depth: bool = False
    perspective_channels: tuple[int, int, int] = (128, 64, 32)
    # radar detector (CARLA only; LEAD's radar_detection, on in its leaderboard mode): see harness.model.radar
    radar: bool = False
    radar_planner_tokens: bool = True  # its query features become planner status tokens (LEAD's use_radar_detection)
    num_radar_sensors: int = 4
    radar_points_per_sensor: int = 75
    num_radar_queries: int = 20
    radar_token_dim: int = 256
    radar_tokenizer_dim: int = 1024
    radar_decoder_dim: int = 1024
    radar_layers: int = 4
    radar_heads: int = 8
    radar_ffn_dim: int = 1024
    radar_dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("image_backbone", "bev_backbone"):
            if getattr(self, name) not in BACKBONES:
                raise ValueError(f"TFv6Config.{name}: unknown backbone {getattr(self, name)!r}; known: {BACKBONES}")
        if self.image_height < 64 or self.image_width < 64:
            raise ValueError(f"TFv6Config: image {self.image_height}x{self.image_width} is smaller than 64 px")
        h, w = self.bev_height_px, self.bev_width_px
        if h % 32 or w % 32:
            raise ValueError(f"TFv6Config: the BEV raster {h}x{w} px must be a multiple of 32 in both axes")
        if (h // self.bev_down_sample) * self.bev_down_sample != h:
            raise ValueError(f"TFv6Config.bev_down_sample {self.bev_down_sample} does not divide {h}")
        if self.token_dim % self.planner_heads:
            raise ValueError("TFv6Config.token_dim must be divisible by planner_heads")
        if self.num_waypoints < 1:
            raise ValueError("TFv6Config.num_waypoints must be >= 1")
        if any(b <= a for a, b in zip(self.target_speed_classes_mps, self.target_speed_classes_mps[1:])):
            raise ValueError("TFv6Config.target_speed_classes_mps must increase")
        for name in ("bev_semantic_classes", "box_classes"):
            keys = [k for k, _ in getattr(self, name)]
            if len(set(keys)) != len(keys) or any(n < 1 for _, n in getattr(self, name)):
                raise ValueError(f"TFv6Config.{name}: source names must be unique and class counts >= 1")

    # derived geometry
    @property
    def bev_height_px(self) -> int:
        """Rows of the BEV raster (x direction)."""
        x0, x1, _, _ = self.bev_extent_m
        return round((x1 - x0) * self.bev_pixels_per_m)

    @property
    def bev_width_px(self) -> int:
        """Columns of the BEV raster (y direction)."""
        _, _, y0, y1 = self.bev_extent_m
        return round((y1 - y0) * self.bev_pixels_per_m)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(rows, cols) of the perception grid the BEV-semantic and CenterNet heads read."""
        return self.bev_height_px // self.bev_down_sample, self.bev_width_px // self.bev_down_sample

    @property
    def image_anchors(self) -> tuple[int, int]:
        """Token grid of the image branch inside each fusion transformer."""
        return max(1, self.image_height // 32), max(1, self.image_width // 32)

    @property
    def bev_anchors(self) -> tuple[int, int]:
        return self.bev_height_px // 32, self.bev_width_px // 32

    @property
    def predict_route(self) -> bool:
        return self.num_route_points > 0

    @property
    def predict_target_speed(self) -> bool:
        return len(self.target_speed_classes_mps) > 0

    @property
    def num_status_tokens(self) -> int:
        return (int(self.use_speed) + int(self.use_acceleration) + int(self.use_command) + self.num_target_points
                + self.num_past_poses + (self.num_radar_queries if self.radar and self.radar_planner_tokens else 0))

    @classmethod
    def preset(cls, name: str, **overrides: object) -> TFv6Config:
        """A named configuration (see :data:`PRESETS`), optionally with fields replaced."""
        if name not in PRESETS:
            raise ValueError(f"unknown TFv6 preset {name!r}; known: {sorted(PRESETS)}")
        cfg = PRESETS[name]
        return replace(cfg, **overrides) if overrides else cfg

    def to_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> TFv6Config:
        """Inverse of :meth:`to_dict`; lists become tuples; an unknown key is an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"TFv6Config: unknown keys {unknown}")

        def tup(v: object) -> object:
            return tuple(tup(x) for x in v) if isinstance(v, list | tuple) else v

        return cls(**{k: tup(v) for k, v in d.items()})


PRESETS: dict[str, TFv6Config] = {
    # NAVSIM camera-only ResNet-34 (LEAD's "LTFv6"; the GPU measure): 4 cameras stitched to
    # 3x270x1920, BEV 64 m x 64 m at 4 px/m, 8 waypoints + headings, speed / acceleration / command tokens,
    # NAVSIM BEV-semantic (7) and CenterNet (1 class) heads.
    "navsim-r34": TFv6Config(),
    # CARLA leaderboard geometry with LiDAR, 3 target points, route and target speed, CARLA heads and the radar
    # detector (20 planner tokens), as LEAD's leaderboard mode.
    "carla-r34": TFv6Config(
        image_height=384, image_width=1152, bev_extent_m=(-32.0, 64.0, -40.0, 40.0), latent=False,
        use_acceleration=False, num_target_points=3, num_route_points=10, predict_headings=False,
        target_speed_classes_mps=(0.0, 4.0, 8.0, 10.0, 13.88888888, 16.0, 17.77777777, 20.0),
        max_speed_mps=25.0, bev_semantic_classes=(("carla", 13),), box_classes=(("carla", 8),),
        box_velocity=True, image_semantic_classes=10, predict_depth=True, radar=True),
    # Waymo E2E camera-only: 3 front cameras, 10 waypoints, speed + command + 6 past poses, no perception.
    "waymo-r34": TFv6Config(
        image_height=270, image_width=1440, bev_extent_m=(0.0, 64.0, -32.0, 32.0), num_waypoints=10,
        predict_headings=False, use_acceleration=False, num_past_poses=6, max_speed_mps=33.33,
        bev_semantic_classes=(), box_classes=()),
    # CPU-trainable in minutes: small images and BEV, tiny backbones, a 2-layer planner.
    "tiny": TFv6Config(
        image_backbone="resnet_tiny", bev_backbone="resnet_tiny", image_height=64, image_width=256,
        bev_extent_m=(-16.0, 16.0, -16.0, 16.0), bev_pixels_per_m=2.0, fusion_layers=1, bev_feature_channels=32,
        bev_down_sample=2, token_dim=64, planner_layers=2, planner_heads=4, planner_ffn_dim=128,
        num_past_poses=4, perspective_channels=(32, 16, 16)),
}


# --- inputs ----------------------------------------------------------------------------------------------


def _check(owner: str, name: str, t: Tensor | None, shape: tuple[int | None, ...], *, floating: bool | None = None,
           batch: int | None = None) -> None:
    if t is None:
        return
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{owner}.{name}: expected a torch.Tensor, got {type(t).__name__}")
    ok = t.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, t.shape))
    if ok and batch is not None and t.shape[0] != batch:
        ok = False
    if not ok:
        want = tuple("*" if s is None else s for s in shape)
        raise ValueError(f"{owner}.{name}: expected shape {want} (batch {batch}), got {tuple(t.shape)}")
    if floating is True and not t.is_floating_point():
        raise ValueError(f"{owner}.{name}: expected a floating tensor, got {t.dtype}")
    if floating is False and t.dtype != torch.bool:
        raise ValueError(f"{owner}.{name}: expected a bool tensor, got {t.dtype}")


@dataclass(frozen=True)
class ModelInputs:
    """One batch of model inputs (what a policy may see at test time).

    Attributes:
        images: ``(B, 3, H, W)`` RGB, 0..255 (uint8 or float): the rig's cameras stitched left to right.
        speed_mps: ``(B,)`` signed longitudinal speed, m/s.
        acceleration_mps2: ``(B,)`` signed longitudinal acceleration, m/s^2.
        command: ``(B, 4)`` one-hot driving command in :class:`harness.types.DrivingCommand` order
            (left, straight, right, unknown).
        lidar_bev: ``(B, C, Hb, Wb)`` LiDAR histogram on the BEV raster (row 0 = x max, column 0 = y max),
            or None in latent mode.
        target_points_m: ``(B, K, 2)`` target points (x, y) in the ego frame, or None.
        past_poses: ``(B, Tp, 3)`` past ego poses (x m, y m, heading rad) in the current ego frame, oldest
            first (the current pose excluded), or None.
        past_valid: ``(B, Tp)`` bool, False where a past pose does not exist (start of a log); None = all
            valid.
        radar_points: ``(B, S * P, 5)`` radar returns (x m, y m, z m, radial velocity m/s, sensor index 0..S-1),
            ``P = radar_points_per_sensor`` per sensor, zero-padded (LEAD's layout), or None (no radar: all
            padding).
    """

    images: Tensor
    speed_mps: Tensor
    acceleration_mps2: Tensor
    command: Tensor
    lidar_bev: Tensor | None = None
    target_points_m: Tensor | None = None
    past_poses: Tensor | None = None
    past_valid: Tensor | None = None
    radar_points: Tensor | None = None

    def __post_init__(self) -> None:
        o = "ModelInputs"
        _check(o, "images", self.images, (None, 3, None, None))
        b = self.images.shape[0]
        _check(o, "speed_mps", self.speed_mps, (None,), floating=True, batch=b)
        _check(o, "acceleration_mps2", self.acceleration_mps2, (None,), floating=True, batch=b)
        _check(o, "command", self.command, (None, 4), batch=b)
        _check(o, "lidar_bev", self.lidar_bev, (None, None, None, None), floating=True, batch=b)
        _check(o, "target_points_m", self.target_points_m, (None, None, 2), floating=True, batch=b)
        _check(o, "past_poses", self.past_poses, (None, None, 3), floating=True, batch=b)
        if self.past_valid is not None:
            if self.past_poses is None:
                raise ValueError("ModelInputs.past_valid given without past_poses")
            _check(o, "past_valid", self.past_valid, tuple(self.past_poses.shape[:2]), floating=False)
        _check(o, "radar_points", self.radar_points, (None, None, 5), floating=True, batch=b)

    @property
    def batch_size(self) -> int:
        return int(self.images.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = True) -> ModelInputs:
        return _to(self, device, non_blocking)

    def pin_memory(self) -> ModelInputs:
        """Every tensor in page-locked memory (the DataLoader calls this with ``pin_memory=True``), so the
        copy to the GPU runs asynchronously."""
        return _map(self, torch.Tensor.pin_memory)


# --- targets ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BEVSemanticTarget:
    """``classes (B, H, W)`` integer class ids on the BEV raster (-1 = ignore, e.g. outside the cameras' view;
    the training pipeline collates int8, the loss widens to long on the device); ``valid (B,)`` bool."""

    classes: Tensor
    valid: Tensor

    def __post_init__(self) -> None:
        _check("BEVSemanticTarget", "classes", self.classes, (None, None, None))
        _check("BEVSemanticTarget", "valid", self.valid, (self.classes.shape[0],), floating=False)


@dataclass(frozen=True)
class BoxTarget:
    """CenterNet targets on the perception grid ``(h, w)`` (row 0 = x max, column 0 = y max).

    Attributes:
        heatmap: ``(B, C, h, w)`` Gaussian peaks in [0, 1], exactly 1 at box centre cells.
        size_m: ``(B, 2, h, w)`` half length and half width (m) at centre cells.
        offset: ``(B, 2, h, w)`` sub-cell (row, column) offset of the centre, in cells, at centre cells.
        yaw_class: ``(B, h, w)`` long heading bin (``num_yaw_bins`` bins over [0, 2 pi), CCW).
        yaw_res: ``(B, 1, h, w)`` heading residual to the bin centre, rad.
        center_mask: ``(B, h, w)`` float, 1 at box centre cells, 0 elsewhere.
        num_boxes: ``(B,)`` float, boxes per sample (the per-sample normaliser; clamped at >= 1).
        valid: ``(B,)`` bool.
        velocity_mps: ``(B, 1, h, w)`` box speed at centre cells, or None.
    """

    heatmap: Tensor
    size_m: Tensor
    offset: Tensor
    yaw_class: Tensor
    yaw_res: Tensor
    center_mask: Tensor
    num_boxes: Tensor
    valid: Tensor
    velocity_mps: Tensor | None = None

    def __post_init__(self) -> None:
        o = "BoxTarget"
        _check(o, "heatmap", self.heatmap, (None, None, None, None), floating=True)
        b, _, h, w = self.heatmap.shape
        _check(o, "size_m", self.size_m, (b, 2, h, w), floating=True)
        _check(o, "offset", self.offset, (b, 2, h, w), floating=True)
        _check(o, "yaw_class", self.yaw_class, (b, h, w))
        _check(o, "yaw_res", self.yaw_res, (b, 1, h, w), floating=True)
        _check(o, "center_mask", self.center_mask, (b, h, w), floating=True)
        _check(o, "num_boxes", self.num_boxes, (b,), floating=True)
        _check(o, "valid", self.valid, (b,), floating=False)
        _check(o, "velocity_mps", self.velocity_mps, (b, 1, h, w), floating=True)


@dataclass(frozen=True)
class ImageSemanticTarget:
    """``classes (B, H, W)`` long ids on the stitched image (-1 = ignore); ``valid (B,)`` bool."""

    classes: Tensor
    valid: Tensor

    def __post_init__(self) -> None:
        _check("ImageSemanticTarget", "classes", self.classes, (None, None, None))
        _check("ImageSemanticTarget", "valid", self.valid, (self.classes.shape[0],), floating=False)


@dataclass(frozen=True)
class DepthTarget:
    """``depth_m (B, H, W)`` metres on the stitched image (non-finite or <= 0 = no label); ``valid (B,)``."""

    depth_m: Tensor
    valid: Tensor

    def __post_init__(self) -> None:
        _check("DepthTarget", "depth_m", self.depth_m, (None, None, None), floating=True)
        _check("DepthTarget", "valid", self.valid, (self.depth_m.shape[0],), floating=False)


@dataclass(frozen=True)
class RadarTarget:
    """``detections (B, Q, 4)`` = x, y (m, ego frame), speed (m/s), valid (1.0 / 0.0): up to Q boxes with radar
    returns, the rest zeros (LEAD's ``radar_detections``); ``valid (B,)`` bool: the sample has radar labels."""

    detections: Tensor
    valid: Tensor

    def __post_init__(self) -> None:
        _check("RadarTarget", "detections", self.detections, (None, None, 4), floating=True)
        _check("RadarTarget", "valid", self.valid, (self.detections.shape[0],), floating=False)


@dataclass(frozen=True)
class ModelTargets:
    """Training labels of one batch, each with its validity mask.

    Attributes:
        waypoints_m: ``(B, N, 2)`` future ego positions (x, y) at the config's waypoint times.
        waypoints_valid: ``(B, N)`` bool (e.g. False past the end of a log, or for a source whose timing does
            not match the target's).
        headings_rad: ``(B, N)`` future headings, or None; ``headings_valid (B, N)``.
        route_m / route_valid: ``(B, R, 2)`` route points and ``(B,)``; None where no source has a route.
        target_speed_mps / brake / target_speed_valid: ``(B,)`` each.
        bev_semantic / boxes: per source head name.
        image_semantic / depth: on the stitched image.
    """

    waypoints_m: Tensor
    waypoints_valid: Tensor
    headings_rad: Tensor | None = None
    headings_valid: Tensor | None = None
    route_m: Tensor | None = None
    route_valid: Tensor | None = None
    target_speed_mps: Tensor | None = None
    brake: Tensor | None = None
    target_speed_valid: Tensor | None = None
    bev_semantic: Mapping[str, BEVSemanticTarget] = field(default_factory=dict)
    boxes: Mapping[str, BoxTarget] = field(default_factory=dict)
    image_semantic: ImageSemanticTarget | None = None
    depth: DepthTarget | None = None
    radar: RadarTarget | None = None

    def __post_init__(self) -> None:
        o = "ModelTargets"
        _check(o, "waypoints_m", self.waypoints_m, (None, None, 2), floating=True)
        b, n, _ = self.waypoints_m.shape
        _check(o, "waypoints_valid", self.waypoints_valid, (b, n), floating=False)
        if (self.headings_rad is None) != (self.headings_valid is None):
            raise ValueError("ModelTargets: headings_rad and headings_valid come together")
        _check(o, "headings_rad", self.headings_rad, (b, n), floating=True)
        _check(o, "headings_valid", self.headings_valid, (b, n), floating=False)
        if (self.route_m is None) != (self.route_valid is None):
            raise ValueError("ModelTargets: route_m and route_valid come together")
        _check(o, "route_m", self.route_m, (b, None, 2), floating=True)
        _check(o, "route_valid", self.route_valid, (b,), floating=False)
        ts = (self.target_speed_mps, self.brake, self.target_speed_valid)
        if any(t is None for t in ts) and not all(t is None for t in ts):
            raise ValueError("ModelTargets: target_speed_mps, brake and target_speed_valid come together")
        _check(o, "target_speed_mps", self.target_speed_mps, (b,), floating=True)
        _check(o, "brake", self.brake, (b,), floating=False)
        _check(o, "target_speed_valid", self.target_speed_valid, (b,), floating=False)
        for name, t in [*self.bev_semantic.items(), *self.boxes.items()]:
            if t.valid.shape[0] != b:
                raise ValueError(f"ModelTargets: head {name!r} has batch {t.valid.shape[0]}, expected {b}")
        if self.radar is not None and self.radar.valid.shape[0] != b:
            raise ValueError(f"ModelTargets: radar has batch {self.radar.valid.shape[0]}, expected {b}")
        object.__setattr__(self, "bev_semantic", dict(self.bev_semantic))
        object.__setattr__(self, "boxes", dict(self.boxes))

    def to(self, device: torch.device | str, non_blocking: bool = True) -> ModelTargets:
        return _to(self, device, non_blocking)

    def pin_memory(self) -> ModelTargets:
        """Every tensor in page-locked memory (the DataLoader calls this with ``pin_memory=True``), so the
        copy to the GPU runs asynchronously."""
        return _map(self, torch.Tensor.pin_memory)


# --- predictions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxPrediction:
    """Raw CenterNet outputs on the perception grid (logits, not probabilities).

    ``heatmap_logits (B, C, h, w)``; ``size_m (B, 2, h, w)``; ``offset (B, 2, h, w)``; ``yaw_logits
    (B, bins, h, w)``; ``yaw_res (B, 1, h, w)``; ``velocity_mps (B, 1, h, w)`` or None.
    """

    heatmap_logits: Tensor
    size_m: Tensor
    offset: Tensor
    yaw_logits: Tensor
    yaw_res: Tensor
    velocity_mps: Tensor | None = None


@dataclass(frozen=True)
class TFv6Prediction:
    """Model outputs, canonical frame (x forward, y left, CCW headings).

    Attributes:
        waypoints_m: ``(B, N, 2)`` future positions, or None when the planner is off (pre-training).
        headings_rad: ``(B, N)`` or None.
        route_m: ``(B, R, 2)`` or None.
        target_speed_logits: ``(B, S)`` over ``target_speed_classes_mps``, or None.
        target_speed_mps: ``(B,)`` expectation under the softmax, or None.
        bev_semantic_logits: per source ``(B, K, H, W)`` on the full BEV raster.
        boxes: per source :class:`BoxPrediction` on the perception grid.
        image_semantic_logits: ``(B, C, H, W)`` on the stitched image, or None.
        depth_m: ``(B, H, W)`` or None.
        radar_detections: ``(B, Q, 4)`` = x, y (m), speed (m/s), validity logit, or None (no radar detector).
    """

    waypoints_m: Tensor | None
    headings_rad: Tensor | None = None
    route_m: Tensor | None = None
    target_speed_logits: Tensor | None = None
    target_speed_mps: Tensor | None = None
    bev_semantic_logits: Mapping[str, Tensor] = field(default_factory=dict)
    boxes: Mapping[str, BoxPrediction] = field(default_factory=dict)
    image_semantic_logits: Tensor | None = None
    depth_m: Tensor | None = None
    radar_detections: Tensor | None = None


@dataclass(frozen=True)
class LossWeights:
    """Raw loss weights by loss key (see :func:`harness.model.losses.tfv6_losses`); missing keys weigh 1.

    With ``normalise`` the weights of the losses actually computed in a step are rescaled to sum to 1 (LEAD
    normalises over every configured key, including never-computed ones; lead-bench does not, spec §7.2).
    """

    weights: Mapping[str, float] = field(default_factory=dict)
    normalise: bool = True

    def get(self, key: str) -> float:
        return float(self.weights.get(key, self.weights.get(key.split("/")[0], 1.0)))


def _to(obj, device, non_blocking):  # noqa: ANN001, ANN202 - generic over the dataclasses above
    return _map(obj, lambda t: t.to(device, non_blocking=non_blocking))


def _map(obj, fn):  # noqa: ANN001, ANN202 - every tensor of a (nested) dataclass through fn
    def mv(v):  # noqa: ANN001, ANN202
        if isinstance(v, torch.Tensor):
            return fn(v)
        if isinstance(v, Mapping):
            return {k: mv(x) for k, x in v.items()}
        if hasattr(v, "__dataclass_fields__"):
            return _map(v, fn)
        return v

    return replace(obj, **{f.name: mv(getattr(obj, f.name)) for f in fields(obj)})
