"""The start of a reactive IDM simulation, as nuPlan's ``build_idm_agents_on_map_rails`` builds it: the
IDM parameters, a scene's current vehicles, and which of them become agents on a rail (official order) and
which stay as parked / off-lane static boxes. The simulation itself is :mod:`metrics.traffic_idm`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from metrics.pdm_scoring.geometry import box_corners, polygons
from metrics.traffic_rails import LaneRails, starting_segments

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

STEP_S = 0.1
NUM_STEPS = 41


@dataclass(frozen=True)
class IDMParameters:
    """``navsim_IDM_traffic_agents.yaml`` (units: m/s, m, s, m/s²)."""

    target_velocity_mps: float = 10.0
    min_gap_m: float = 1.0
    headway_s: float = 1.5
    accel_max_mps2: float = 1.0
    decel_max_mps2: float = 2.0
    radius_m: float = 100.0
    snap_threshold_m: float = 3.0
    stationary_speed_mps: float = 0.1
    heading_estimation_m: float = 0.5  # nuPlan polyline get_nearest_pose_from_position
    step_s: float = STEP_S


@dataclass(frozen=True)
class IDMVehicles:
    """The current-frame vehicles of a scene (box-centre poses and global velocities at t = 0, map frame)."""

    poses: F64  # (V, 3)
    velocity_xy: F64  # (V, 2)
    length_m: F64  # (V,)
    width_m: F64  # (V,)


@dataclass(frozen=True)
class IDMSim:
    """One reactive simulation's inputs: a scene's current vehicles, its map's rails, the ego's real footprint at
    t = 0 (the initial collision check) and the ego speed that replaces a NaN vehicle speed (nuPlan's fallback)."""

    vehicles: IDMVehicles
    rails: LaneRails
    ego_box: shapely.Geometry
    ego_speed_mps: float


@dataclass(frozen=True)
class _SimStart:
    """``build_idm_agents_on_map_rails`` for one simulation: agents (vehicle indices, official order), their
    rails, progress, snapped pose and speed; the parked / off-lane vehicles kept as static boxes."""

    agents: I64
    rail: I64
    progress: F64
    snapped: F64
    speed: F64
    target: F64
    parked: I64


def _start(sim: IDMSim, p: IDMParameters) -> _SimStart:
    vehicles, rails = sim.vehicles, sim.rails
    n_veh = len(vehicles.poses)
    half_l, half_w = vehicles.length_m / 2, vehicles.width_m / 2
    p_idx, r_idx = rails.segments_containing(vehicles.poses[:, :2])
    in_inter = rails.in_intersection(vehicles.poses[:, :2])
    rail, progress, snapped = starting_segments(rails, vehicles.poses, p.heading_estimation_m,
                                                (p_idx, r_idx, in_inter))
    lateral = np.hypot(snapped[:, 0] - vehicles.poses[:, 0], snapped[:, 1] - vehicles.poses[:, 1])
    snapped_boxes = polygons(box_corners(np.nan_to_num(snapped), half_l, half_w))
    occupied = [sim.ego_box]
    agents: list[int] = []
    for i in range(n_veh):
        if rail[i] < 0 or lateral[i] > p.snap_threshold_m:
            continue
        if shapely.intersects(snapped_boxes[i], np.array(occupied, dtype=object)).any():
            continue
        occupied.append(snapped_boxes[i])
        agents.append(i)
    ag = np.array(agents, dtype=np.int64)
    limit = rails.speed_limit_mps[rail[ag]]
    speed = np.hypot(vehicles.velocity_xy[ag, 0], vehicles.velocity_xy[ag, 1])
    # parked / off-lane vehicles: the current vehicles that are not agents
    others = np.setdiff1d(np.arange(n_veh), ag)
    stationary = np.hypot(vehicles.velocity_xy[:, 0], vehicles.velocity_xy[:, 1]) < p.stationary_speed_mps
    in_lane = np.zeros(n_veh, dtype=bool)
    in_lane[p_idx[~rails.is_connector[r_idx]]] = True
    in_lanes = in_lane | in_inter
    off_rail = (rail >= 0) & (lateral > p.snap_threshold_m)
    return _SimStart(agents=ag, rail=rail[ag], progress=progress[ag].astype(np.float64), snapped=snapped[ag],
                     speed=np.where(np.isnan(speed), sim.ego_speed_mps, speed),
                     target=np.where(np.isfinite(limit) & (limit > 0), limit, p.target_velocity_mps),
                     parked=others[((stationary & ~in_lanes) | off_rail)[others]])
