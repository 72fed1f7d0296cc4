"""Canonical vector road map (nuPlan's map model), shared by the world generator, map readers and metrics.

Coordinates are in the map's projected frame (metres, x east, y north for nuPlan's UTM maps; the embedded
world uses a local projected frame). Ids follow nuPlan: lanes and lane connectors share one id namespace,
roadblocks and roadblock connectors share another; intersections, stop lines, crosswalks, walkways,
car parks and boundaries each have their own. Polygons are shapely 2 geometries.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely

F64 = npt.NDArray[np.float64]


class StopLineType(enum.IntEnum):
    """nuPlan ``stop_polygon_type_fid`` values."""

    PED_CROSSING = 0
    STOP_SIGN = 1
    TRAFFIC_LIGHT = 2
    TURN_STOP = 3
    YIELD = 4
    UNKNOWN = 5


def _xy(owner: str, value: object) -> F64:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{owner}: expected a finite polyline of shape (N >= 2, 2), got {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class Lane:
    """A lane inside a roadblock. ``baseline_xy`` is its centerline in driving direction."""

    id: int
    roadblock_id: int
    lane_index: int  # 0 = leftmost in driving direction (nuPlan convention)
    baseline_xy: F64
    polygon: shapely.Polygon
    left_boundary_id: int
    right_boundary_id: int
    speed_limit_mps: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "baseline_xy", _xy(f"Lane[{self.id}].baseline_xy", self.baseline_xy))


@dataclass(frozen=True)
class LaneConnector:
    """A lane inside a roadblock connector, joining ``exit_lane_id`` (upstream) to ``entry_lane_id``."""

    id: int
    roadblock_connector_id: int
    exit_lane_id: int
    entry_lane_id: int
    baseline_xy: F64
    polygon: shapely.Polygon
    left_boundary_id: int
    right_boundary_id: int
    speed_limit_mps: float | None = None
    stop_line_ids: tuple[int, ...] = ()
    has_traffic_light: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "baseline_xy", _xy(f"LaneConnector[{self.id}].baseline_xy", self.baseline_xy))


@dataclass(frozen=True)
class Roadblock:
    """A road section of parallel same-direction lanes (nuPlan lane group). ``lane_ids`` by lane_index."""

    id: int
    polygon: shapely.Polygon
    lane_ids: tuple[int, ...]


@dataclass(frozen=True)
class RoadblockConnector:
    """The connector roadblock between two roadblocks (nuPlan lane group connector)."""

    id: int
    polygon: shapely.Polygon
    from_roadblock_id: int
    to_roadblock_id: int
    lane_connector_ids: tuple[int, ...]
    intersection_id: int | None = None


@dataclass(frozen=True)
class Boundary:
    id: int
    line_xy: F64

    def __post_init__(self) -> None:
        object.__setattr__(self, "line_xy", _xy(f"Boundary[{self.id}].line_xy", self.line_xy))


@dataclass(frozen=True)
class Area:
    """A polygonal map feature: intersection, crosswalk, walkway or car park."""

    id: int
    polygon: shapely.Polygon


@dataclass(frozen=True)
class StopLine:
    id: int
    polygon: shapely.Polygon
    type: StopLineType


@dataclass(frozen=True)
class RoadMap:
    """A nuPlan-style vector map for one location."""

    location: str
    version: str
    lanes: Mapping[int, Lane]
    lane_connectors: Mapping[int, LaneConnector]
    roadblocks: Mapping[int, Roadblock]
    roadblock_connectors: Mapping[int, RoadblockConnector]
    boundaries: Mapping[int, Boundary] = field(default_factory=dict)
    intersections: Mapping[int, Area] = field(default_factory=dict)
    stop_lines: Mapping[int, StopLine] = field(default_factory=dict)
    crosswalks: Mapping[int, Area] = field(default_factory=dict)
    walkways: Mapping[int, Area] = field(default_factory=dict)
    carparks: Mapping[int, Area] = field(default_factory=dict)
    projected_crs: str = "EPSG:32611"

    def __post_init__(self) -> None:
        clash = set(self.lanes) & set(self.lane_connectors)
        if clash:
            raise ValueError(f"RoadMap: lanes and lane connectors share ids {sorted(clash)[:5]}")
        clash = set(self.roadblocks) & set(self.roadblock_connectors)
        if clash:
            raise ValueError(f"RoadMap: roadblocks and roadblock connectors share ids {sorted(clash)[:5]}")
        for lc in self.lane_connectors.values():
            for end in (lc.exit_lane_id, lc.entry_lane_id):
                if end not in self.lanes:
                    raise ValueError(f"RoadMap: lane connector {lc.id} refers to unknown lane {end}")

    # --- lane graph --------------------------------------------------------------------------------------

    def outgoing_connectors(self, lane_id: int) -> tuple[int, ...]:
        """Lane connectors leaving lane ``lane_id``."""
        return self._graph()[0].get(lane_id, ())

    def incoming_connectors(self, lane_id: int) -> tuple[int, ...]:
        """Lane connectors entering lane ``lane_id``."""
        return self._graph()[1].get(lane_id, ())

    def successors(self, lane_or_connector_id: int) -> tuple[int, ...]:
        """Next lane-graph nodes: a lane's outgoing connectors, or a connector's entry lane."""
        if lane_or_connector_id in self.lane_connectors:
            return (self.lane_connectors[lane_or_connector_id].entry_lane_id,)
        return self.outgoing_connectors(lane_or_connector_id)

    def predecessors(self, lane_or_connector_id: int) -> tuple[int, ...]:
        if lane_or_connector_id in self.lane_connectors:
            return (self.lane_connectors[lane_or_connector_id].exit_lane_id,)
        return self.incoming_connectors(lane_or_connector_id)

    def left_neighbor(self, lane_id: int) -> int | None:
        lane = self.lanes[lane_id]
        ids = self.roadblocks[lane.roadblock_id].lane_ids
        i = ids.index(lane_id)
        return ids[i - 1] if i > 0 else None

    def right_neighbor(self, lane_id: int) -> int | None:
        lane = self.lanes[lane_id]
        ids = self.roadblocks[lane.roadblock_id].lane_ids
        i = ids.index(lane_id)
        return ids[i + 1] if i + 1 < len(ids) else None

    def _graph(self) -> tuple[dict[int, tuple[int, ...]], dict[int, tuple[int, ...]]]:
        cached = self.__dict__.get("_graph_cache")
        if cached is None:
            out: dict[int, list[int]] = {}
            inc: dict[int, list[int]] = {}
            for lc in sorted(self.lane_connectors.values(), key=lambda c: c.id):
                out.setdefault(lc.exit_lane_id, []).append(lc.id)
                inc.setdefault(lc.entry_lane_id, []).append(lc.id)
            cached = ({k: tuple(v) for k, v in out.items()}, {k: tuple(v) for k, v in inc.items()})
            object.__setattr__(self, "_graph_cache", cached)
        return cached

    def roadblock_successors(self, roadblock_id: int) -> tuple[int, ...]:
        """Roadblock-graph successors: connectors leaving a roadblock, or a connector's target roadblock."""
        if roadblock_id in self.roadblock_connectors:
            return (self.roadblock_connectors[roadblock_id].to_roadblock_id,)
        return tuple(
            sorted(c.id for c in self.roadblock_connectors.values() if c.from_roadblock_id == roadblock_id)
        )
