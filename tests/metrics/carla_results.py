"""Hand-written CARLA leaderboard 2.0 / Bench2Drive result documents for the tests.

The messages are the texts the leaderboard's criteria write; the numbers are chosen so that every score can be
worked out by hand (see the tests).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

INFRACTION_KEYS = ("collisions_layout", "collisions_pedestrian", "collisions_vehicle", "red_light",
                   "stop_infraction", "outside_route_lanes", "min_speed_infractions",
                   "yield_emergency_vehicle_infractions", "scenario_timeouts", "route_dev", "vehicle_blocked",
                   "route_timeout")

VEHICLE_COLLISION = ("Agent collided against object with type=vehicle.lincoln.mkz_2020 and id=412 at "
                     "(x=-401.22, y=21.07, z=0.03)")
RED_LIGHT = "Agent ran a red light 2391 at (x=-352.8, y=41.1, z=0.2)"


def min_speed(pct: float) -> str:
    return f"Average speed is {pct}% of the surrounding traffic's one"


def outside_lanes(metres: float, pct: float) -> str:
    return f"Agent went outside its route lanes for about {metres} meters ({pct}% of the completed route)"


def record(route_id: str, status: str, rc: float, penalty: float, ds: float, length_m: float, index: int = 0,
           **infractions: list[str]) -> dict[str, Any]:
    inf = {k: list(infractions.get(k, [])) for k in INFRACTION_KEYS}
    return {
        "index": index, "route_id": route_id, "status": status,
        "num_infractions": sum(len(v) for v in inf.values()), "infractions": inf,
        "scores": {"score_route": rc, "score_penalty": penalty, "score_composed": ds},
        "meta": {"route_length": length_m, "duration_game": 123.45, "duration_system": 456.789},
    }


#: Three routes: a vehicle collision and a red light (penalty 0.6 x 0.7 = 0.42), a perfect one, and one the
#: agent crashed in at 35.5 % (unfinished). Progress says 3 routes.
THREE_ROUTES_JSON = """
{
    "_checkpoint": {
        "global_record": {},
        "progress": [3, 3],
        "records": [
            {
                "index": 0,
                "route_id": "RouteScenario_0_rep0",
                "status": "Completed",
                "num_infractions": 2,
                "infractions": {
                    "collisions_layout": [],
                    "collisions_pedestrian": [],
                    "collisions_vehicle": ["Agent collided against object with type=vehicle.lincoln.mkz_2020 and id=412 at (x=-401.22, y=21.07, z=0.03)"],
                    "red_light": ["Agent ran a red light 2391 at (x=-352.8, y=41.1, z=0.2)"],
                    "stop_infraction": [],
                    "outside_route_lanes": [],
                    "min_speed_infractions": [],
                    "yield_emergency_vehicle_infractions": [],
                    "scenario_timeouts": [],
                    "route_dev": [],
                    "vehicle_blocked": [],
                    "route_timeout": []
                },
                "scores": {"score_route": 100.0, "score_penalty": 0.42, "score_composed": 42.0},
                "meta": {"route_length": 1000.0, "duration_game": 95.2, "duration_system": 310.4}
            },
            {
                "index": 1,
                "route_id": "RouteScenario_1_rep0",
                "status": "Perfect",
                "num_infractions": 0,
                "infractions": {
                    "collisions_layout": [], "collisions_pedestrian": [], "collisions_vehicle": [],
                    "red_light": [], "stop_infraction": [], "outside_route_lanes": [],
                    "min_speed_infractions": [], "yield_emergency_vehicle_infractions": [],
                    "scenario_timeouts": [], "route_dev": [], "vehicle_blocked": [], "route_timeout": []
                },
                "scores": {"score_route": 100.0, "score_penalty": 1.0, "score_composed": 100.0},
                "meta": {"route_length": 2000.0, "duration_game": 180.0, "duration_system": 600.0}
            },
            {
                "index": 2,
                "route_id": "RouteScenario_2_rep0",
                "status": "Failed - Agent crashed",
                "num_infractions": 0,
                "infractions": {
                    "collisions_layout": [], "collisions_pedestrian": [], "collisions_vehicle": [],
                    "red_light": [], "stop_infraction": [], "outside_route_lanes": [],
                    "min_speed_infractions": [], "yield_emergency_vehicle_infractions": [],
                    "scenario_timeouts": [], "route_dev": [], "vehicle_blocked": [], "route_timeout": []
                },
                "scores": {"score_route": 35.5, "score_penalty": 1.0, "score_composed": 35.5},
                "meta": {"route_length": 500.0, "duration_game": 40.0, "duration_system": 95.0}
            }
        ]
    },
    "entry_status": "Finished",
    "eligible": true,
    "sensors": ["carla_camera", "carla_lidar", "carla_gnss", "carla_imu", "carla_speedometer"],
    "values": [],
    "labels": []
}
"""


def three_routes() -> dict[str, Any]:
    return json.loads(THREE_ROUTES_JSON)


def finished_only() -> dict[str, Any]:
    """The three-route file without the crashed route (progress [2, 2])."""
    data = three_routes()
    data["_checkpoint"]["records"] = data["_checkpoint"]["records"][:2]
    data["_checkpoint"]["progress"] = [2, 2]
    return data


def bench2drive_merged(records: list[dict[str, Any]], driving_score: float, success_rate: float) -> dict[str, Any]:
    """A Bench2Drive merged.json: records without ``index`` plus its three summary keys."""
    recs = copy.deepcopy(records)
    for r in recs:
        r.pop("index", None)
        r.update(scenario_name="ParkingExit", town_name="Town12", weather_id=3, save_name=f"{r['route_id']}_x")
    return {"_checkpoint": {"records": recs}, "driving score": driving_score, "success rate": success_rate,
            "eval num": len(recs)}


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) if not isinstance(data, str) else data, encoding="utf-8")
    return path
