"""Unit and property tests for harness.types: validation, immutability and helpers of the canonical sample."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from harness.trajectory import Trajectory, TrajectorySampling
from harness.types import (
    BEVRaster,
    Boxes3D,
    Camera,
    DrivingCommand,
    EgoState,
    Lidar,
    Navigation,
    Observation,
    Sample,
    SampleMeta,
    Source,
    Targets,
)

PROPS = settings(max_examples=40, deadline=None)
NAN = math.nan

# --- builders: one valid instance each, any field overridable ------------------------------------------


def make_meta(**kw: Any) -> SampleMeta:
    args: dict[str, Any] = dict(
        source=Source.NAVSIM,
        split="test",
        log_id="log-1",
        token="tok-1",
        timestamp_us=1_600_000_000_000_000,
        map_location="us-nv-las-vegas-strip",
    )
    return SampleMeta(**(args | kw))


def make_camera(**kw: Any) -> Camera:
    args: dict[str, Any] = dict(
        name="CAM_F0",
        intrinsics=np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]]),
        ego_from_camera=np.eye(4),
        width=64,
        height=48,
    )
    return Camera(**(args | kw))


def make_lidar(**kw: Any) -> Lidar:
    return Lidar(**({"points": np.arange(20, dtype=np.float32).reshape(5, 4)} | kw))


def make_ego(**kw: Any) -> EgoState:
    args: dict[str, Any] = dict(
        velocity_mps=np.array([5.0, 0.1]),
        acceleration_mps2=np.array([0.2, 0.0]),
        history_poses=np.array([[-2.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        history_times_s=np.array([-1.0, -0.5, 0.0]),
    )
    return EgoState(**(args | kw))


def make_navigation(**kw: Any) -> Navigation:
    args: dict[str, Any] = dict(
        command=DrivingCommand.LEFT,
        target_points_xy=np.array([[10.0, 2.0]]),
        route_xy=np.array([[0.0, 0.0], [5.0, 0.5], [10.0, 2.0]]),
    )
    return Navigation(**(args | kw))


def make_boxes(**kw: Any) -> Boxes3D:
    args: dict[str, Any] = dict(
        center_xyz=np.array([[10.0, 2.0, 0.8], [-5.0, -3.0, 0.9]]),
        size_lwh=np.array([[4.5, 2.0, 1.6], [0.6, 0.6, 1.8]]),
        yaw_rad=np.array([0.1, -1.5]),
        velocity_xy_mps=np.array([[3.0, 0.0], [0.0, 1.0]]),
        class_names=("vehicle", "pedestrian"),
        source_classes=("vehicle", "pedestrian"),
        track_ids=("a", "b"),
    )
    return Boxes3D(**(args | kw))


def make_bev(**kw: Any) -> BEVRaster:
    # 10 m forward x 5 m across at 0.5 m per pixel: 20 rows, 10 columns.
    args: dict[str, Any] = dict(
        classes=np.zeros((20, 10), dtype=np.uint8),
        vocabulary=("void", "road", "lane"),
        resolution_m=0.5,
        extent_m=(-5.0, 5.0, -2.5, 2.5),
    )
    return BEVRaster(**(args | kw))


def make_trajectory() -> Trajectory:
    poses = np.zeros((8, 3))
    poses[:, 0] = np.arange(1, 9)
    return Trajectory(poses)


def make_targets(**kw: Any) -> Targets:
    args: dict[str, Any] = dict(
        future=make_trajectory(),
        boxes=make_boxes(),
        bev=make_bev(),
        rater_trajectories=(make_trajectory(), make_trajectory()),
        rater_scores=np.array([10.0, 4.0]),
        semantics={"CAM_F0": np.zeros((48, 64), dtype=np.uint8)},
        depth_m={"CAM_F0": np.full((48, 64), np.inf, dtype=np.float32)},
    )
    return Targets(**(args | kw))


# --- array fields: bad shapes, non-finite values, wrong dtypes ------------------------------------------

#: (builder, field, owner as it appears in error messages)
ARRAY_FIELDS: list[tuple[Callable[..., Any], str, str]] = [
    (make_camera, "intrinsics", r"Camera\[CAM_F0\]"),
    (make_camera, "ego_from_camera", r"Camera\[CAM_F0\]"),
    (make_camera, "distortion", r"Camera\[CAM_F0\]"),
    (make_lidar, "points", "Lidar"),
    (make_ego, "velocity_mps", "EgoState"),
    (make_ego, "acceleration_mps2", "EgoState"),
    (make_ego, "history_poses", "EgoState"),
    (make_ego, "history_times_s", "EgoState"),
    (make_navigation, "target_points_xy", "Navigation"),
    (make_navigation, "route_xy", "Navigation"),
    (make_boxes, "center_xyz", "Boxes3D"),
    (make_boxes, "size_lwh", "Boxes3D"),
    (make_boxes, "yaw_rad", "Boxes3D"),
    (make_boxes, "velocity_xy_mps", "Boxes3D"),
    (make_bev, "classes", "BEVRaster"),
    (make_targets, "rater_scores", "Targets"),
]
IDS = [f"{b.__name__.removeprefix('make_')}.{f}" for b, f, _ in ARRAY_FIELDS]


def good_value(builder: Callable[..., Any], name: str) -> np.ndarray:
    return np.array(getattr(builder(), name))


def field_pattern(owner: str, name: str) -> str:
    return rf"{owner}.*\b{name}\b"


@pytest.mark.parametrize(("builder", "name", "owner"), ARRAY_FIELDS, ids=IDS)
def test_array_fields_are_read_only_copies(builder: Callable[..., Any], name: str, owner: str) -> None:
    value = good_value(builder, name)
    obj = builder(**{name: value})
    arr = getattr(obj, name)
    assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arr[(0,) * arr.ndim] = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, name, value)
    # The caller's array is neither frozen nor shared.
    assert value.flags.writeable
    assert not np.shares_memory(arr, value)


@pytest.mark.parametrize(("builder", "name", "owner"), ARRAY_FIELDS, ids=IDS)
@pytest.mark.parametrize("reshape", ["add_axis", "drop_last", "scalar"])
def test_array_fields_reject_wrong_shapes(
    builder: Callable[..., Any], name: str, owner: str, reshape: str
) -> None:
    value = good_value(builder, name)
    if reshape == "add_axis":
        bad = value[None]
    elif reshape == "drop_last":  # one column (or, for vectors tied to a count, one entry) too few
        if name == "distortion":
            pytest.skip("distortion takes any number of coefficients")
        bad = value[..., :-1]
    else:
        bad = np.float64(1.0)
    with pytest.raises(ValueError, match=field_pattern(owner, name)):
        builder(**{name: bad})


@pytest.mark.parametrize(("builder", "name", "owner"), ARRAY_FIELDS, ids=IDS)
@pytest.mark.parametrize("bad", [NAN, math.inf])
def test_array_fields_reject_non_finite(
    builder: Callable[..., Any], name: str, owner: str, bad: float
) -> None:
    value = good_value(builder, name).astype(np.float64)
    value[(0,) * value.ndim] = bad
    if name == "velocity_xy_mps":  # unknown velocities are allowed (NaN), see Boxes3D
        assert np.isnan(builder(**{name: value}).velocity_xy_mps[0, 0]) == math.isnan(bad)
        return
    with pytest.raises(ValueError, match=field_pattern(owner, name)):
        builder(**{name: value})


@pytest.mark.parametrize(("builder", "name", "owner"), ARRAY_FIELDS, ids=IDS)
@pytest.mark.parametrize("kind", ["str", "complex", "object"])
def test_array_fields_reject_wrong_dtypes(
    builder: Callable[..., Any], name: str, owner: str, kind: str
) -> None:
    value = good_value(builder, name)
    if kind == "str":
        bad: Any = value.astype(str)  # numeric strings would otherwise be parsed silently
    elif kind == "complex":
        bad = value.astype(np.complex128)  # the imaginary part would otherwise be dropped
    else:
        bad = value.astype(object)
        bad[(0,) * bad.ndim] = None
    with pytest.raises(ValueError, match=field_pattern(owner, name)):
        builder(**{name: bad})


def test_float_fields_accept_ints_and_lists() -> None:
    ego = make_ego(velocity_mps=[5, 0], history_poses=[[0, 0, 0]], history_times_s=[0])
    assert ego.velocity_mps.dtype == np.float64
    assert ego.speed_mps == 5.0
    lidar = make_lidar(points=np.ones((3, 4), dtype=np.float64))
    assert lidar.points.dtype == np.float32


# --- meta -----------------------------------------------------------------------------------------------


def test_sample_meta_valid_and_frozen() -> None:
    meta = make_meta(timestamp_us=np.int64(42))
    assert meta.timestamp_us == 42 and type(meta.timestamp_us) is int
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.token = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("source", "navsim"),
        ("token", ""),
        ("token", None),
        ("token", 123),
        ("timestamp_us", NAN),
        ("timestamp_us", math.inf),
        ("timestamp_us", 1.5),
        ("timestamp_us", "1600000000"),
        ("timestamp_us", None),
    ],
)
def test_sample_meta_rejects(field_name: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"SampleMeta\.{field_name}"):
        make_meta(**{field_name: value})


# --- driving command ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", list(DrivingCommand))
def test_driving_command_one_hot_round_trip(command: DrivingCommand) -> None:
    v = command.one_hot()
    assert v.dtype == np.int64 and v.shape == (4,) and v.sum() == 1 and v[int(command)] == 1
    assert DrivingCommand.from_one_hot(v) is command
    assert DrivingCommand.from_one_hot(v.astype(np.float32)) is command
    assert DrivingCommand.from_one_hot(v.astype(bool)) is command
    assert DrivingCommand.from_one_hot(v[None]) is command  # a (1, 4) row, as stored in NAVSIM logs


def test_driving_command_order_is_navsims() -> None:
    assert [c.name for c in DrivingCommand] == ["LEFT", "STRAIGHT", "RIGHT", "UNKNOWN"]
    assert DrivingCommand.from_one_hot([0, 0, 1, 0]) is DrivingCommand.RIGHT


@pytest.mark.parametrize(
    "bad",
    [
        [0, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 0, 0],
        [1, 0, 0, 0, 0],
        [0.5, 0.5, 0, 0],
        [2, 0, 0, 0],
        [-1, 1, 1, 0],
        [NAN, 1, 0, 0],
        ["1", "0", "0", "0"],
    ],
)
def test_driving_command_rejects_bad_one_hot(bad: list[Any]) -> None:
    with pytest.raises(ValueError, match=r"^frame abc: expected a one-hot vector of 4"):
        DrivingCommand.from_one_hot(bad, where="frame abc")
    with pytest.raises(ValueError, match=r"^driving_command:"):
        DrivingCommand.from_one_hot(bad)


# --- observation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(0, 48), (64, -1), (64.0, 48), ("64", 48), (True, 48)])
def test_camera_rejects_bad_size(width: object, height: object) -> None:
    with pytest.raises(ValueError, match=r"Camera\[CAM_F0\]: width and height"):
        make_camera(width=width, height=height)


def test_camera_load_image_checks_shape_and_dtype() -> None:
    good = np.zeros((48, 64, 3), dtype=np.uint8)
    assert make_camera(loader=lambda: good).load_image() is good
    for bad in (
        np.zeros((64, 48, 3), np.uint8),
        np.zeros((48, 64), np.uint8),
        np.zeros((48, 64, 4), np.uint8),
        np.zeros((48, 64, 3), np.float32),
        [[0]],
    ):
        cam = make_camera(loader=lambda bad=bad: bad, image_path="cam.jpg")
        with pytest.raises(
            ValueError, match=r"Camera\[CAM_F0\] image cam.jpg: expected uint8 \(48, 64, 3\)"
        ):
            cam.load_image()
    with pytest.raises(ValueError, match=r"Camera\[CAM_F0\] has no image loader"):
        make_camera().load_image()


def test_camera_loader_is_not_compared_and_distortion_defaults() -> None:
    a, b = make_camera(loader=lambda: None), make_camera()
    assert a.loader is not None and b.loader is None
    np.testing.assert_array_equal(b.distortion, np.zeros(5))


@pytest.mark.parametrize("channels", [("x", "y", "z"), ("y", "x", "z", "intensity"), ("x", "y", "z", "ring")])
def test_lidar_rejects_bad_channels(channels: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"Lidar\.(channels|points)"):
        make_lidar(points=np.zeros((5, len(channels)), dtype=np.float32), channels=channels)


def test_lidar_extra_channels_and_xyz() -> None:
    lidar = make_lidar(points=np.ones((3, 6)), channels=("x", "y", "z", "intensity", "ring", "lidar_id"))
    assert lidar.points.shape == (3, 6) and lidar.xyz.shape == (3, 3)
    with pytest.raises(ValueError, match=r"Lidar\.points: expected shape \(N, 4\)"):
        make_lidar(points=np.ones((3, 6)))
    assert make_lidar(points=np.zeros((0, 4))).points.shape == (0, 4)  # an empty sweep is valid


@pytest.mark.parametrize(
    "times",
    [[-0.5, -1.0, 0.0], [-1.0, -1.0, 0.0], [-1.0, -0.5, 0.5], [-1.0, 0.0, -0.5]],
    ids=["backwards", "repeated", "ends_in_future", "unordered"],
)
def test_ego_history_times_must_increase_and_end_at_or_before_now(times: list[float]) -> None:
    with pytest.raises(ValueError, match=r"EgoState\.history_times_s must increase and end at <= 0"):
        make_ego(history_times_s=times)


def test_ego_history_edge_cases() -> None:
    assert make_ego(history_times_s=[-1.0, -0.5, -0.1]).history_times_s[-1] == -0.1
    empty = make_ego(history_poses=np.zeros((0, 3)), history_times_s=np.zeros(0))
    assert empty.history_poses.shape == (0, 3)
    with pytest.raises(ValueError, match=r"EgoState\.history_times_s: expected shape \(3\), got \(2,\)"):
        make_ego(history_times_s=[-0.5, 0.0])
    assert make_ego(velocity_mps=[3.0, 4.0]).speed_mps == pytest.approx(5.0)


def test_navigation_validation() -> None:
    with pytest.raises(ValueError, match=r"Navigation\.command"):
        make_navigation(command=1)
    nav = make_navigation(target_points_xy=None, route_xy=None, source_command=5)
    assert nav.target_points_xy is None and nav.source_command == 5


def test_observation_camera_names_must_match_keys() -> None:
    cam = make_camera()
    obs = Observation(cameras={"CAM_F0": cam}, ego=make_ego(), navigation=make_navigation())
    assert obs.lidar is None
    with pytest.raises(ValueError, match=r"Observation\.cameras\['CAM_L0'\]"):
        Observation(cameras={"CAM_L0": cam}, ego=make_ego(), navigation=make_navigation())
    with pytest.raises(ValueError, match=r"Observation\.cameras\['CAM_F0'\]"):
        Observation(cameras={"CAM_F0": "not a camera"}, ego=make_ego(), navigation=make_navigation())  # type: ignore[dict-item]


# --- targets --------------------------------------------------------------------------------------------


def test_boxes_valid_empty_and_len() -> None:
    boxes = make_boxes(class_names=["vehicle", "pedestrian"])
    assert len(boxes) == 2 and boxes.class_names == ("vehicle", "pedestrian")
    empty = Boxes3D.empty()
    assert len(empty) == 0 and empty.center_xyz.shape == (0, 3) and empty.velocity_xy_mps.shape == (0, 2)


@pytest.mark.parametrize("name", ["class_names", "source_classes", "track_ids"])
def test_boxes_label_tuples_must_match_count(name: str) -> None:
    with pytest.raises(ValueError, match=rf"Boxes3D\.{name}: expected 2 entries, got 1"):
        make_boxes(**{name: ("x",)})
    with pytest.raises(ValueError, match=rf"Boxes3D\.{name}"):
        make_boxes(**{name: "ab"})  # a bare string is not two labels


@pytest.mark.parametrize("size", [[[4.5, 2.0, 1.6], [0.6, 0.0, 1.8]], [[-4.5, 2.0, 1.6], [0.6, 0.6, 1.8]]])
def test_boxes_sizes_must_be_positive(size: list[list[float]]) -> None:
    with pytest.raises(ValueError, match=r"Boxes3D\.size_lwh must be positive"):
        make_boxes(size_lwh=size)


def test_boxes_arrays_must_agree_on_count() -> None:
    with pytest.raises(ValueError, match=r"Boxes3D\.yaw_rad: expected shape \(2\), got \(3,\)"):
        make_boxes(yaw_rad=np.zeros(3))


def test_bev_extent_and_shape_agree() -> None:
    bev = make_bev()
    assert bev.classes.shape == (20, 10)
    with pytest.raises(
        ValueError, match=r"BEVRaster\.classes: shape \(10, 20\) does not match .* gives \(20, 10\)"
    ):
        make_bev(classes=np.zeros((10, 20), dtype=np.uint8))
    with pytest.raises(
        ValueError, match=r"BEVRaster\.classes: shape \(20, 10\) does not match .* gives \(40, 20\)"
    ):
        make_bev(resolution_m=0.25)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"resolution_m": 0.0}, "resolution_m"),
        ({"resolution_m": -0.5}, "resolution_m"),
        ({"resolution_m": NAN}, "resolution_m"),
        ({"extent_m": (-5.0, 5.0, -2.5)}, "extent_m"),
        ({"extent_m": (-5.0, NAN, -2.5, 2.5)}, "extent_m"),
        ({"extent_m": (5.0, -5.0, -2.5, 2.5)}, "gives"),
    ],
)
def test_bev_rejects_degenerate_geometry(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=rf"BEVRaster\b.*{message}"):
        make_bev(**overrides)


def test_bev_vocabulary_bound() -> None:
    classes = np.zeros((20, 10), dtype=np.uint8)
    classes[3, 4] = 2
    assert make_bev(classes=classes).classes[3, 4] == 2  # the last id of three is fine
    classes[3, 4] = 3
    with pytest.raises(ValueError, match=r"BEVRaster\.classes has id 3 beyond a vocabulary of 3"):
        make_bev(classes=classes)


@pytest.mark.parametrize(
    "bad", [np.full((20, 10), 300), np.full((20, 10), -1), np.full((20, 10), 1.5), [[300] * 10] * 20]
)
def test_bev_class_ids_never_wrap_or_truncate(bad: Any) -> None:
    # 300 would wrap to 44 in uint8 and -1 to 255; 1.5 would truncate to 1.
    with pytest.raises(ValueError, match=r"BEVRaster\.classes"):
        make_bev(classes=bad, vocabulary=tuple(f"c{i}" for i in range(256)))


def test_bev_accepts_integral_ids_of_any_int_dtype() -> None:
    bev = make_bev(classes=np.ones((20, 10), dtype=np.int64))
    assert bev.classes.dtype == np.uint8 and bev.classes.max() == 1


def test_targets_validation() -> None:
    targets = make_targets()
    assert targets.semantics["CAM_F0"].dtype == np.uint8
    assert np.isinf(targets.depth_m["CAM_F0"]).all()  # no return: inf is allowed in depth
    assert not targets.semantics["CAM_F0"].flags.writeable
    assert Targets().future is None and Targets().rater_scores is None
    with pytest.raises(ValueError, match=r"Targets\.rater_scores: expected shape \(2\), got \(3,\)"):
        make_targets(rater_scores=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"Targets\.rater_trajectories"):
        make_targets(rater_trajectories=(np.zeros((8, 3)),))
    with pytest.raises(ValueError, match=r"Targets\.semantics\[CAM_F0\]"):
        make_targets(semantics={"CAM_F0": np.zeros((48, 64, 3), dtype=np.uint8)})
    with pytest.raises(ValueError, match=r"Targets\.depth_m\[CAM_F0\]"):
        make_targets(depth_m={"CAM_F0": np.zeros(5, dtype=np.float32)})


def test_sample_assembles_and_is_frozen() -> None:
    obs = Observation(
        cameras={"CAM_F0": make_camera()}, ego=make_ego(), navigation=make_navigation(), lidar=make_lidar()
    )
    sample = Sample(meta=make_meta(), observation=obs, targets=make_targets())
    assert sample.meta.source is Source.NAVSIM
    assert sample.targets.future is not None and sample.targets.future.sampling == TrajectorySampling(8, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.targets = Targets()  # type: ignore[misc]


# --- properties -----------------------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False)


@PROPS
@given(hnp.arrays(np.float64, st.tuples(st.integers(0, 6), st.just(3)), elements=finite), st.data())
def test_boxes_round_trip_values_and_reject_any_nan(center: np.ndarray, data: st.DataObject) -> None:
    n = len(center)
    args = dict(
        center_xyz=center,
        size_lwh=np.ones((n, 3)),
        yaw_rad=np.zeros(n),
        velocity_xy_mps=np.zeros((n, 2)),
        class_names=["car"] * n,
        source_classes=["car"] * n,
        track_ids=[str(i) for i in range(n)],
    )
    boxes = Boxes3D(**args)
    np.testing.assert_array_equal(boxes.center_xyz, center)
    if n:
        i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, 2))
        bad = center.copy()
        bad[i, j] = data.draw(st.sampled_from([NAN, math.inf, -math.inf]))
        with pytest.raises(ValueError, match=r"Boxes3D\.center_xyz: values must be finite"):
            Boxes3D(**(args | {"center_xyz": bad}))


@PROPS
@given(
    st.integers(1, 30),
    st.integers(1, 30),
    st.sampled_from([0.1, 0.2, 0.25, 0.5, 1.0]),
    st.floats(-50.0, 50.0),
    st.floats(-50.0, 50.0),
)
def test_bev_any_consistent_extent_is_accepted(h: int, w: int, res: float, x0: float, y0: float) -> None:
    bev = BEVRaster(np.zeros((h, w), dtype=np.uint8), ("void",), res, (x0, x0 + h * res, y0, y0 + w * res))
    assert bev.classes.shape == (h, w)


@PROPS
@given(
    hnp.arrays(np.float64, st.tuples(st.integers(1, 6), st.just(3)), elements=finite),
    st.integers(0, 5),
    st.integers(0, 2),
)
def test_ego_history_poses_reject_any_nan(poses: np.ndarray, i: int, j: int) -> None:
    n = len(poses)
    times = -np.arange(n, dtype=np.float64)[::-1] * 0.5
    ego = make_ego(history_poses=poses, history_times_s=times)
    np.testing.assert_array_equal(ego.history_poses, poses)
    bad = poses.copy()
    bad[i % n, j] = NAN
    with pytest.raises(ValueError, match=r"EgoState\.history_poses: values must be finite"):
        make_ego(history_poses=bad, history_times_s=times)
