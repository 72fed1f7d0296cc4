"""The nuPlan sensor rig (8 cameras, a merged cloud of 5 LiDARs) as the embedded world mounts it.

Frames (see DESIGN.md): the world's **ego frame** has x forward, y left, z up, origin on the ground under the
centre of the rear axle. The **lidar frame** is the frame OpenScene's ``MergedPointCloud`` and the camera
extrinsics (``sensor2lidar_*``) are expressed in. Camera axes are OpenCV's (x right, y down, z forward).

Where the numbers come from
---------------------------
* **Intrinsics, distortion, sensor2lidar** (all 8 cameras): one OpenScene/NAVSIM frame's ``cams`` dict as
  printed (8 significant digits) in several downstream repositories, found with the code index
  (``find_string "'sensor2lidar_translation': array(["``; e.g. a MetaDrive/ScenarioNet re-rendering script
  whose repository name the index does not expose). Every camera: 1920x1080 images,
  ``K = [[1545, 0, 960], [0, 1545, 560], [0, 0, 1]]`` (numpy printed ``1.545e+03``, so the values are exact),
  distortion ``(k1, k2, p1, p2, k3) = (-0.356123, 0.172545, -0.00213, 0.000464, -0.05231)``.
  Cross-checks: autonomousvision/py123d history (commit d48cd8c, ``notebooks/nuplan/nuplan_sensor_loading.ipynb``)
  shows the same K and distortion for CAM_F0 of another nuPlan log, read from the nuPlan DB ``camera`` table,
  with a slightly different mounting (``t = [1.664, -0.001, 1.572]``): calibrations differ per vehicle by a few
  centimetres. autonomousvision/lead ``lead/common/constants.py::NUPLAN_CAMERA_CALIBRATION`` re-mounts CAM_L0/F0/
  R0/B0 in CARLA with the same yaws (about -56, 0, +54, 180 deg), FOV 63.71 deg (= 2 atan(960 / 1545)) and
  480x280 renders bottom-cropped to 270 rows, which is what cy = 560 of a 1080-row image implies.
* **What "sensor2lidar" is**: OpenDriveLab/OpenScene ``DriveEngine/process_data/helpers/nuplan_cameras_utils.py``
  copies the nuPlan DB ``camera.translation/rotation`` into ``sensor2lidar_*``; motional/nuplan-devkit
  ``docs/nuplan_schema.md`` defines those as relative to the **ego vehicle frame** (rear axle).
* **Point-cloud frame and lidar2ego**: OpenScene ``create_openscene_metadata.py`` writes ``lidar2ego_*`` from the
  nuPlan DB ``lidar`` table of the MergedPointCloud channel, which is the identity (motional/nuplan-devkit issue
  #410: ``get_lidar_to_ego_transform`` always returns ``eye(4)``); the NAVSIM maintainers state the merged cloud is
  in the ego frame with its origin at the rear axle (autonomousvision/navsim issue #71), and NAVSIM projects
  ego-frame boxes and raw points into the cameras with ``sensor2lidar`` alone
  (``navsim/visualization/camera.py``). So in real data lidar frame = nuPlan ego frame = camera extrinsic frame.
* **Height of that origin above the ground (derived, not published)**: nuPlan's ego origin is the rear-axle
  centre, not a point on the ground. autonomousvision/py123d ``parser/nuplan/utils/nuplan_constants.py``
  estimates from the point clouds that the Pacifica box centre is 0.45 m above it (height 1.777 m, so the
  ground is 0.44 m below); LEAD mounts CAM_L0/F0/R0/B0 in CARLA 0.46-0.48 m higher than their
  ``sensor2lidar`` z. We use :data:`NUPLAN_LIDAR_ORIGIN_HEIGHT_M` = 0.45 m. Because the world's ego origin is on
  the ground, the world's ``ego_from_lidar`` is a pure lift by that height (real data: identity). This keeps
  every ``sensor2lidar`` and every PCD byte in real data's frame (ground near z = -0.45 m) and puts the
  cameras at their true ~1.9 m above the road.
* **The five LiDARs** (derived): nuPlan publishes no scanner extrinsics or beam tables (py123d:
  "Lidar extrinsic are unknown"). Ids follow ``lidar_info``: 0 top, 1 and 2 the A-pillar lidars, 3 back,
  4 front (nuplan-devkit ``nuplan_db_orm/utils.py`` documents 1 = right, 2 = left; py123d found the data has
  1 = left, 2 = right, which we follow). Positions, beams and sectors below are plausible choices sized for
  speed (about 50k rays per sweep; real merged clouds are denser), stated in the lidar frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from harness.geometry import se3_from_rt

F64 = npt.NDArray[np.float64]

NUPLAN_CAMERA_NAMES = ("CAM_F0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2", "CAM_B0")

#: nuPlan image size (pixels) at full resolution.
NUPLAN_IMAGE_WIDTH = 1920
NUPLAN_IMAGE_HEIGHT = 1080
#: Pinhole intrinsics shared by all 8 nuPlan cameras at 1920x1080 (see module docstring).
NUPLAN_INTRINSICS = np.array([[1545.0, 0.0, 960.0], [0.0, 1545.0, 560.0], [0.0, 0.0, 1.0]])
#: The real lens distortion (k1, k2, p1, p2, k3) of the nuPlan cameras. Rendered images have none; see
#: :func:`nuplan_cameras`.
NUPLAN_DISTORTION = np.array([-0.356123, 0.172545, -0.00213, 0.000464, -0.05231])
#: Height (m) of nuPlan's ego/lidar origin (rear-axle centre) above the ground; derived, see module docstring.
NUPLAN_LIDAR_ORIGIN_HEIGHT_M = 0.45

# sensor2lidar_rotation (3x3, camera OpenCV axes -> lidar frame) and sensor2lidar_translation (m), as printed
# from one OpenScene frame (module docstring). Rotations are re-orthonormalised on use (8-digit rounding).
_SENSOR2LIDAR: dict[str, tuple[tuple[tuple[float, ...], ...], tuple[float, float, float]]] = {
    "CAM_F0": (((-0.00785972, -0.02271912, 0.99971099),
                (-0.99994262, 0.00745516, -0.00769211),
                (-0.00727825, -0.99971409, -0.02277642)), (1.65506747, -0.01168732, 1.49112208)),
    "CAM_L0": (((0.81776776, -0.0057693, 0.57551942),
                (-0.57553938, -0.01377628, 0.81765802),
                (0.0032112, -0.99988846, -0.01458626)), (1.63069485, 0.11956747, 1.48117884)),
    "CAM_L1": (((0.93120104, 0.00261563, -0.36449662),
                (0.36447127, -0.02048653, 0.93098926),
                (-0.00503215, -0.99978671, -0.0200304)), (1.29939471, 0.63819702, 1.36736822)),
    "CAM_L2": (((0.63520782, 0.01497516, -0.77219607),
                (0.77232489, -0.00580669, 0.63520119),
                (0.00502834, -0.99987101, -0.01525415)), (-0.49561003, 0.54750373, 1.3472672)),
    "CAM_R0": (((-0.82454901, 0.01165722, 0.56567043),
                (-0.56528395, 0.02532491, -0.82450755),
                (-0.02393702, -0.9996113, -0.01429199)), (1.61828343, -0.15532203, 1.49007665)),
    "CAM_R1": (((-0.92684778, 0.02177016, -0.37480562),
                (0.37497631, 0.00421964, -0.92702479),
                (-0.01859993, -0.9997541, -0.01207426)), (1.27299407, -0.60973112, 1.37217911)),
    "CAM_R2": (((-0.62253245, 0.03706878, -0.78171558),
                (0.78163434, -0.02000083, -0.62341618),
                (-0.03874424, -0.99911254, -0.01652307)), (-0.48771615, -0.493167, 1.35027683)),
    "CAM_B0": (((0.00802542, 0.01047463, -0.99991293),
                (0.99989075, -0.01249671, 0.00789433),
                (-0.01241293, -0.99986705, -0.01057378)), (-0.47463312, 0.02368552, 1.4341838)),
}


def _readonly(owner: str, name: str, value: object, shape: tuple[int, ...]) -> F64:
    arr = np.array(value, dtype=np.float64)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}.{name}: expected a finite array of shape {shape}, got {arr.shape}")
    arr.setflags(write=False)
    return arr


def _check_rigid(owner: str, name: str, m: F64) -> None:
    r = m[:3, :3]
    if not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0 or not np.allclose(
        m[3], (0.0, 0.0, 0.0, 1.0)
    ):
        raise ValueError(f"{owner}.{name}: not a rigid transform (rotation must be orthonormal, det +1)")


def _orthonormalize(r: npt.ArrayLike) -> F64:
    """Nearest rotation matrix (SVD), to undo the 8-digit rounding of the printed calibration."""
    u, _, vt = np.linalg.svd(np.asarray(r, dtype=np.float64))
    out = u @ vt
    if np.linalg.det(out) < 0:
        u[:, -1] *= -1
        out = u @ vt
    return out


@dataclass(frozen=True)
class CameraSpec:
    """A pinhole camera of the rig.

    Attributes:
        name: nuPlan channel name, e.g. ``CAM_F0``.
        width: image width in pixels.
        height: image height in pixels.
        intrinsics: ``(3, 3)`` pinhole K at ``(width, height)``; pixel centres at integer coordinates.
        distortion: ``(5,)`` k1, k2, p1, p2, k3 as nuPlan stores it.
        lidar_from_camera: ``(4, 4)`` camera (OpenCV axes) -> lidar frame; OpenScene's
            ``sensor2lidar_rotation`` / ``sensor2lidar_translation``.
    """

    name: str
    width: int
    height: int
    intrinsics: F64
    distortion: F64
    lidar_from_camera: F64

    def __post_init__(self) -> None:
        o = f"CameraSpec[{self.name}]"
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (self.width, self.height)):
            raise ValueError(f"{o}: width and height must be ints, got {self.width!r}x{self.height!r}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{o}: width and height must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "intrinsics", _readonly(o, "intrinsics", self.intrinsics, (3, 3)))
        object.__setattr__(self, "distortion", _readonly(o, "distortion", self.distortion, (5,)))
        lfc = _readonly(o, "lidar_from_camera", self.lidar_from_camera, (4, 4))
        _check_rigid(o, "lidar_from_camera", lfc)
        object.__setattr__(self, "lidar_from_camera", lfc)
        k = self.intrinsics
        if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.allclose(k[2], (0.0, 0.0, 1.0)):
            raise ValueError(f"{o}.intrinsics: expected positive focal lengths and last row (0, 0, 1), got {k}")

    def scaled(self, factor: float) -> CameraSpec:
        """The same camera with images resized by ``factor`` (0.25 turns 1920x1080 into 480x270).

        K's first two rows are multiplied by the actual size ratios (``u' = s u``), the convention of image
        resizing code in this field; the extrinsic and distortion are unchanged.
        """
        if not factor > 0:
            raise ValueError(f"CameraSpec.scaled: factor must be positive, got {factor}")
        width = max(1, round(self.width * factor))
        height = max(1, round(self.height * factor))
        k = self.intrinsics.copy()
        k[0, :] *= width / self.width
        k[1, :] *= height / self.height
        return replace(self, width=width, height=height, intrinsics=k)


@dataclass(frozen=True)
class LidarScanner:
    """One spinning LiDAR of the merged cloud, mounted axis-aligned with the lidar frame.

    Attributes:
        lidar_id: the ``lidar_info`` value of its points (nuPlan: 0 top, 1 left, 2 right, 3 back, 4 front).
        name: a readable name.
        origin_m: ``(3,)`` optical centre in the lidar frame.
        elevations_deg: beam elevations, ascending; a point's ``ring`` is its beam's index here.
        azimuth_steps: rays per full revolution.
        azimuth_sector_deg: ``(start, end)`` of the kept sector, counter-clockwise from +x (the car body blocks
            the rest); ``(-180, 180)`` for a full turn.
        max_range_m: no return beyond this range.
    """

    lidar_id: int
    name: str
    origin_m: tuple[float, float, float]
    elevations_deg: tuple[float, ...]
    azimuth_steps: int
    azimuth_sector_deg: tuple[float, float] = (-180.0, 180.0)
    max_range_m: float = 80.0

    def __post_init__(self) -> None:
        o = f"LidarScanner[{self.name}]"
        e = np.asarray(self.elevations_deg, dtype=np.float64)
        if e.ndim != 1 or len(e) == 0 or np.any(np.diff(e) <= 0) or np.any(np.abs(e) >= 90):
            raise ValueError(f"{o}.elevations_deg: expected strictly ascending angles in (-90, 90)")
        if self.azimuth_steps < 4:
            raise ValueError(f"{o}.azimuth_steps: expected >= 4, got {self.azimuth_steps}")
        start, end = self.azimuth_sector_deg
        if not 0 < end - start <= 360:
            raise ValueError(f"{o}.azimuth_sector_deg: expected 0 < end - start <= 360, got {self.azimuth_sector_deg}")
        if not self.max_range_m > 0:
            raise ValueError(f"{o}.max_range_m: expected > 0, got {self.max_range_m}")


@dataclass(frozen=True)
class LidarSpec:
    """The merged LiDAR: its frame on the ego and the scanners that feed it.

    Attributes:
        ego_from_lidar: ``(4, 4)`` lidar frame -> world ego frame; what the NAVSIM writer stores as
            ``lidar2ego_translation`` / ``lidar2ego_rotation``. Its rotation must be about z only (the ground
            stays a horizontal plane in the lidar frame, which the ray caster relies on).
        scanners: the scanners whose returns are merged.
        range_noise_m: standard deviation of the deterministic per-ray range noise.
        dropout: fraction of rays that never return (deterministic per ray).
    """

    ego_from_lidar: F64
    scanners: tuple[LidarScanner, ...] = field(default=())
    range_noise_m: float = 0.02
    dropout: float = 0.01

    def __post_init__(self) -> None:
        m = _readonly("LidarSpec", "ego_from_lidar", self.ego_from_lidar, (4, 4))
        _check_rigid("LidarSpec", "ego_from_lidar", m)
        if not np.allclose(m[2, :3], (0.0, 0.0, 1.0), atol=1e-9):
            raise ValueError("LidarSpec.ego_from_lidar: rotation must be about the z axis only")
        object.__setattr__(self, "ego_from_lidar", m)
        object.__setattr__(self, "scanners", tuple(self.scanners))
        ids = [s.lidar_id for s in self.scanners]
        if len(set(ids)) != len(ids):
            raise ValueError(f"LidarSpec.scanners: duplicate lidar ids {ids}")
        if self.range_noise_m < 0 or not 0 <= self.dropout < 1:
            raise ValueError("LidarSpec: range_noise_m must be >= 0 and dropout in [0, 1)")


def _linspace(lo: float, hi: float, n: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(lo, hi, n))


#: The merged nuPlan LiDAR as the world emulates it (derived mounting; see the module docstring). The top
#: scanner sits above the roof rack (2.4 m above the road); the four short-range scanners sit just outside the
#: Pacifica's body (5.176 x 2.297 m, centred 1.461 m ahead of the rear axle) and keep the half-turn that faces
#: away from it.
NUPLAN_LIDAR = LidarSpec(
    ego_from_lidar=se3_from_rt(np.eye(3), (0.0, 0.0, NUPLAN_LIDAR_ORIGIN_HEIGHT_M)),
    scanners=(
        LidarScanner(0, "top", (1.4, 0.0, 1.95), _linspace(-25.0, 10.0, 32), 1024),
        LidarScanner(1, "a_pillar_left", (2.3, 1.2, 0.8), _linspace(-30.0, 10.0, 16), 512, (0.0, 180.0), 40.0),
        LidarScanner(2, "a_pillar_right", (2.3, -1.2, 0.8), _linspace(-30.0, 10.0, 16), 512, (-180.0, 0.0), 40.0),
        LidarScanner(3, "back", (-1.2, 0.0, 0.3), _linspace(-30.0, 10.0, 16), 512, (90.0, 270.0), 40.0),
        LidarScanner(4, "front", (4.1, 0.0, 0.3), _linspace(-30.0, 10.0, 16), 512, (-90.0, 90.0), 40.0),
    ),
)


def nuplan_cameras(scale: float = 0.25, *, real_distortion: bool = False) -> tuple[CameraSpec, ...]:
    """The 8 nuPlan cameras (in :data:`NUPLAN_CAMERA_NAMES` order), resized by ``scale``.

    Args:
        scale: image scale; 1.0 is nuPlan's 1920x1080, 0.25 gives 480x270.
        real_distortion: record nuPlan's real lens distortion. Off by default: the world renders ideal pinhole
            images, so the calibration it writes says "no distortion" (what the pixels really are); a reader that
            undistorted them with nuPlan's coefficients would warp them wrongly.

    Returns:
        One :class:`CameraSpec` per camera; extrinsics are the real ``sensor2lidar`` values.
    """
    dist = NUPLAN_DISTORTION if real_distortion else np.zeros(5)
    out = []
    for name in NUPLAN_CAMERA_NAMES:
        rot, trans = _SENSOR2LIDAR[name]
        spec = CameraSpec(
            name=name,
            width=NUPLAN_IMAGE_WIDTH,
            height=NUPLAN_IMAGE_HEIGHT,
            intrinsics=NUPLAN_INTRINSICS,
            distortion=dist,
            lidar_from_camera=se3_from_rt(_orthonormalize(rot), trans),
        )
        out.append(spec if scale == 1.0 else spec.scaled(scale))
    return tuple(out)
