"""LEAD's CARLA route-folder format: layout, vocabularies and the file codecs (read and write).

One route is one folder (``data/<Scenario>/<route>/``, e.g. ``Accident/Town03_Rep0_route_001783_...``) written by
LEAD's expert (autonomousvision/lead ``lead/expert/expert.py::save_sensors``, ``save_meta``, ``destroy``):

================================  =====================================================================
``rgb/0000.jpg``                  the rig's cameras stitched left to right (slot 1 first), JPEG, RGB
``rgb_perturbated/``              the same from the perturbed rig (lateral shift + yaw, see metas)
``semantics[_perturbated]/``      PNG uint8, stitched, already grouped into :data:`SEMANTIC_CLASSES`
``depth[_perturbated]/``          PNG uint8 at 1/4 resolution, metres * 255 / 50, clipped at 50 m
``hdmap[_perturbated]/``          PNG uint8 256 x 256 ChauffeurNet classes at 2 px/m around the vehicle
``lidar/0000.laz``                LAS point format 0, 0.1 m scale, extra uint8 ``time`` (sweep age, ticks)
``radar[_perturbated]/0000.npz``  ``radar1`` .. ``radar4`` float16 (N, 4) = x, y, z, radial velocity
``bboxes/0000.pkl``               lzma pickle: list of box dicts (ego frame)
``metas/0000.pkl``                lzma pickle: dict of ego / route / scenario data (futures at 20 Hz)
================================  =====================================================================

Frames are saved every ``DATA_SAVE_FREQ`` = 5 ticks of the 20 Hz simulation (4 Hz): frame ``f`` is tick
``5 f``. Everything on disk is in LEAD's **CARLA ego frame**: x forward, y right, z up (left-handed), yaw
clockwise seen from above, origin on the ground under the vehicle centre. Raster layout (hdmap, the
box occupancy LEAD draws): row index grows with CARLA y (row 0 = left), column index with x (column 0 = behind).
``adapters/carla/frames.py`` converts to the canonical frame; nothing here does.
"""

from __future__ import annotations

import enum
import io
import lzma
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from harness.errors import DataError
from harness.safe_pickle import NUMPY_GLOBALS, RestrictedUnpickler, dumps_compatible

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

#: Simulation rate and sensor-save stride (``config_base.data_save_freq``, ``config_expert.fps``).
CARLA_FPS = 20
DATA_SAVE_FREQ = 5
FRAME_INTERVAL_S = DATA_SAVE_FREQ / CARLA_FPS
#: Future ego samples written into every meta (``ego_num_temporal_data_points_saved``; index 0 = now).
EGO_FUTURE_TICKS = 200
#: Future samples written into every car / walker box (``other_vehicles_num_temporal_data_points_saved``).
BOX_FUTURE_TICKS = 40
#: LEAD's route planner pop distance whose target points the loader uses (``tp_pop_distance``).
TP_POP_DISTANCE_M = 3.25
#: LAS layout of the LiDAR files (``config_base.point_format``, ``point_precision_*``).
LAS_POINT_FORMAT = 0
LAS_SCALE_M = 0.1
#: 8-bit depth encoding (``common_utils.encode_depth_8bit``): metres clipped to [0, 50], * 255 / 50, truncated.
DEPTH_MAX_M = 50.0
DEPTH_DOWNSAMPLE = 4
#: hdmap raster (``expert_base``: ``width_in_pixels`` 256 at ``pixels_per_meter_collection`` 2, ego centred).
HDMAP_SIZE_PX = 256
HDMAP_PX_PER_M = 2.0
RADAR_KEYS = ("radar1", "radar2", "radar3", "radar4")

#: Per-frame folders and their file suffixes; ``*_perturbated`` copies exist for the camera-like sensors.
FRAME_FILES: dict[str, str] = {
    "rgb": ".jpg", "semantics": ".png", "depth": ".png", "hdmap": ".png", "radar": ".npz",
    "lidar": ".laz", "bboxes": ".pkl", "metas": ".pkl",
}
PERTURBED_FOLDERS = ("rgb", "semantics", "depth", "hdmap", "radar")


class TargetDataset(enum.IntEnum):
    """LEAD's ``constants.TargetDataset``: the rig a route was collected for (metas key ``target_dataset``)."""

    UNKNOWN = 0
    CARLA_LEADERBOARD2_3CAMERAS = 1
    CARLA_LEADERBOARD2_6CAMERAS = 2
    NAVSIM_4CAMERAS = 3
    WAYMO_E2E_2025_3CAMERAS = 4


class CarlaCommand(enum.IntEnum):
    """CARLA's ``RoadOption`` as LEAD stores it in ``next_commands`` (``constants.CarlaNavigationCommand``)."""

    VOID = -1
    UNKNOWN = 0
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    LANEFOLLOW = 4
    CHANGELANELEFT = 5
    CHANGELANERIGHT = 6


#: ``constants.TransfuserSemanticSegmentationClass``: the 10 grouped image classes LEAD stores.
SEMANTIC_CLASSES = ("unlabeled", "vehicle", "road", "traffic_light", "pedestrian", "road_line", "obstacle",
                    "special_vehicle", "stop_sign", "biker")
#: ``constants.ChaffeurNetBEVSemanticClass``: the hdmap PNG's classes.
HDMAP_CLASSES = ("unlabeled", "road", "sidewalk", "lane_markers", "lane_markers_broken", "stop_signs",
                 "traffic_green", "traffic_yellow", "traffic_red")
#: ``constants.TransfuserBEVSemanticClass``: the 13-class BEV target (map + box occupancy).
BEV_CLASSES = ("unlabeled", "road", "lane_markers", "stop_signs", "vehicle", "walker", "obstacle", "parking_vehicle",
               "special_vehicle", "biker", "traffic_green", "traffic_red_normal", "traffic_red_not_normal")
#: ``constants.CHAFFEURNET_TO_TRANSFUSER_BEV_SEMANTIC_CONVERTER`` as a lookup table (hdmap id -> BEV id).
HDMAP_TO_BEV = np.array([0, 1, 0, 2, 2, 3, 0, 0, 0], dtype=np.uint8)

#: LEAD's box ``class`` strings (``expert.get_bounding_boxes``).
BOX_CLASSES = ("ego_car", "car", "walker", "static", "static_prop_car", "traffic_light", "stop_sign")
#: Mesh sets from ``constants`` that change a box's meaning.
EMERGENCY_TYPES = frozenset({"vehicle.dodge.charger_police_2020", "vehicle.dodge.charger_police",
                             "vehicle.ford.ambulance", "vehicle.carlamotors.firetruck"})
BIKER_TYPES = frozenset({"vehicle.diamondback.century", "vehicle.gazelle.omafiets", "vehicle.bh.crossbike",
                         "vehicle.harley-davidson.low_rider", "vehicle.kawasaki.ninja", "vehicle.vespa.zx125",
                         "vehicle.yamaha.yzf"})
#: ``TrainingConfig.data_bb_static_types_white_list``: the static props LEAD labels (cones, warning signs).
OBSTACLE_TYPES = frozenset({"static.prop.constructioncone", "static.prop.trafficwarning"})

#: Meta keys the reader needs (a meta missing one raises DataError naming route and frame).
REQUIRED_META_KEYS = ("speed", "accel_x", "accel_y", "pos_global", "theta", "future_positions", "future_yaws",
                      "route", "target_dataset", "perturbation_translation", "perturbation_rotation", "town")


def frame_stem(frame: int) -> str:
    return f"{frame:04d}"


def frame_path(route_dir: Path, folder: str, frame: int, *, perturbed: bool = False) -> Path:
    """``<route>/<folder>[_perturbated]/<frame:04d><suffix>``."""
    name = f"{folder}_perturbated" if perturbed and folder in PERTURBED_FOLDERS else folder
    return route_dir / name / f"{frame_stem(frame)}{FRAME_FILES[folder]}"


# --- lzma pickles ---------------------------------------------------------------------------------------


def read_lzma_pickle(path: Path, *, where: str) -> Any:
    """An lzma-compressed pickle read through the restricted unpickler (numpy and builtins only)."""
    try:
        raw = lzma.decompress(path.read_bytes())
    except FileNotFoundError as exc:
        raise DataError(f"{where}: missing file", path=path) from exc
    except (OSError, lzma.LZMAError, EOFError) as exc:
        raise DataError(f"{where}: not an lzma-compressed pickle ({exc})", path=path) from exc
    try:
        return RestrictedUnpickler(io.BytesIO(raw), allowed=NUMPY_GLOBALS, origin=str(path)).load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is corrupt input, reported with its file
        raise DataError(f"{where}: corrupt pickle ({type(exc).__name__}: {exc})", path=path) from exc


def lzma_pickle_bytes(obj: Any) -> bytes:
    """What LEAD's ``common_utils.write_pickle`` writes: an lzma (xz) stream around a pickle."""
    return lzma.compress(dumps_compatible(obj))


# --- images ---------------------------------------------------------------------------------------------


def read_png(path: Path, *, where: str) -> U8:
    """A single-channel 8-bit PNG as uint8 (H, W)."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P"):
                raise DataError(f"{where}: expected an 8-bit single-channel PNG, got mode {im.mode}", path=path)
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataError(f"{where}: missing file", path=path) from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{where}: unreadable PNG ({exc})", path=path) from exc


def png_bytes(image: U8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="L").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def read_jpeg(path: Path, *, where: str) -> U8:
    """A JPEG as uint8 (H, W, 3) RGB."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataError(f"{where}: missing file", path=path) from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{where}: unreadable JPEG ({exc})", path=path) from exc


def jpeg_bytes(image: U8, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def image_size(path: Path, *, where: str) -> tuple[int, int]:
    """(width, height) from the file header, without decoding."""
    try:
        with Image.open(path) as im:
            return int(im.width), int(im.height)
    except FileNotFoundError as exc:
        raise DataError(f"{where}: missing file", path=path) from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{where}: unreadable image ({exc})", path=path) from exc


def encode_depth(depth_m: npt.ArrayLike) -> U8:
    """LEAD's 8-bit depth at full resolution -> stored PNG pixels (downsample first with :func:`downsample_depth`)."""
    d = np.clip(np.nan_to_num(np.asarray(depth_m, dtype=np.float64), posinf=DEPTH_MAX_M), 0.0, DEPTH_MAX_M)
    return (d / DEPTH_MAX_M * 255.0).astype(np.uint8)


def decode_depth(encoded: U8) -> F32:
    """Stored PNG pixels -> metres (``common_utils.decode_depth_8bit``); 50 m means "50 m or farther"."""
    return (np.asarray(encoded, dtype=np.float32) / 255.0) * np.float32(DEPTH_MAX_M)


def upsample_depth(depth_m: npt.ArrayLike, factor: int = DEPTH_DOWNSAMPLE) -> F32:
    """LEAD's upsampling of the stored depth (``cv2.resize(..., INTER_LINEAR)`` to ``factor`` x the size).

    OpenCV's bilinear rule for float images: output pixel ``i`` samples the input at ``(i + 0.5) / factor - 0.5``,
    clamped to the image, with linear weights; separable in rows and columns.
    """
    d = np.asarray(depth_m, dtype=np.float32)

    def axis(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0.0, n - 1)
        i0 = np.floor(src).astype(np.int64)
        return i0, np.minimum(i0 + 1, n - 1), (src - i0).astype(np.float32)

    r0, r1, wr = axis(d.shape[0])
    c0, c1, wc = axis(d.shape[1])
    rows = d[r0] * (1 - wr)[:, None] + d[r1] * wr[:, None]
    return rows[:, c0] * (1 - wc)[None, :] + rows[:, c1] * wc[None, :]


def downsample_depth(depth_m: npt.ArrayLike, factor: int = DEPTH_DOWNSAMPLE) -> npt.NDArray[np.float64]:
    """Area-average by ``factor`` (LEAD: ``cv2.resize(..., INTER_AREA)`` to ``w // 4 x h // 4``), far = 50 m."""
    d = np.clip(np.nan_to_num(np.asarray(depth_m, dtype=np.float64), posinf=DEPTH_MAX_M), 0.0, DEPTH_MAX_M)
    h, w = (d.shape[0] // factor) * factor, (d.shape[1] // factor) * factor
    return d[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


# --- LiDAR (.laz) ---------------------------------------------------------------------------------------


def read_laz(path: Path, *, where: str) -> tuple[F32, npt.NDArray[np.uint8]]:
    """Points (N, 3) float32 (CARLA ego frame, metres) and their ``time`` byte (sweep age in ticks)."""
    import laspy

    try:
        las = laspy.read(str(path))
        xyz = np.asarray(las.xyz, dtype=np.float32)
        time = np.asarray(las["time"], dtype=np.uint8)
    except FileNotFoundError as exc:
        raise DataError(f"{where}: missing file", path=path) from exc
    except Exception as exc:  # noqa: BLE001 - laspy/lazrs raise many types for undecodable data
        raise DataError(f"{where}: LiDAR .laz does not decode ({type(exc).__name__}: {exc})", path=path) from exc
    if xyz.shape[0] != time.shape[0]:
        raise DataError(f"{where}: .laz has {xyz.shape[0]} points but {time.shape[0]} time values", path=path)
    return xyz, time


def laz_bytes(points_xyz: npt.ArrayLike, time: npt.ArrayLike) -> bytes:
    """What ``save_sensors`` writes: LAS format 0, offsets at the minimum, 0.1 m scale, extra uint8 ``time``."""
    import laspy

    pts = np.asarray(points_xyz, dtype=np.float64).reshape(-1, 3)
    header = laspy.LasHeader(point_format=LAS_POINT_FORMAT)
    header.offsets = pts.min(axis=0) if len(pts) else np.zeros(3)
    header.scales = np.full(3, LAS_SCALE_M)
    header.add_extra_dim(laspy.ExtraBytesParams(name="time", type=np.uint8))
    buf = io.BytesIO()
    with laspy.open(buf, mode="w", header=header, do_compress=True, closefd=False) as writer:
        rec = laspy.ScaleAwarePointRecord.zeros(pts.shape[0], header=header)
        rec.x, rec.y, rec.z = pts[:, 0], pts[:, 1], pts[:, 2]
        rec["time"] = np.asarray(time, dtype=np.uint8).reshape(-1)
        writer.write_points(rec)
    return buf.getvalue()


# --- radar (.npz) ---------------------------------------------------------------------------------------


def read_radar(path: Path, *, where: str) -> tuple[F32, ...]:
    """The four radars' points, each (N_i, 4) float32 = x, y, z, radial velocity (CARLA ego frame)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            out = []
            for key in RADAR_KEYS:
                if key not in npz:
                    raise DataError(f"{where}: radar file lacks {key!r} (has {sorted(npz.files)})", path=path)
                arr = np.asarray(npz[key], dtype=np.float32)
                if arr.ndim != 2 or arr.shape[1] != 4:
                    raise DataError(f"{where}: {key} must be (N, 4), got {arr.shape}", path=path)
                out.append(arr)
    except FileNotFoundError as exc:
        raise DataError(f"{where}: missing file", path=path) from exc
    except DataError:
        raise
    except (OSError, ValueError) as exc:
        raise DataError(f"{where}: unreadable radar npz ({exc})", path=path) from exc
    return tuple(out)


def radar_bytes(radars: tuple[npt.ArrayLike, ...]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(r, dtype=np.float16).reshape(-1, 4) for k, r in zip(RADAR_KEYS, radars)})
    return buf.getvalue()
