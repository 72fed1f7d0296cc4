"""Sensor rendering benchmark: per-camera and per-LiDAR-sweep time of the embedded world's renderer.

Prints a table at camera scales 1/4 (480x270, the default world) and 1/2 (960x540), for a scene on the
procedural map with about 40 objects around the ego. The baseline is measured in the same run: the
straightforward renderer, one Python ray per pixel (or per LiDAR ray) intersected with the ground plane and
every box, run on a random subset of pixels/rays and extrapolated to the full image/sweep.

Target (the default world, 480 frames x 8 cameras + LiDAR in < 60 s on 2 cores): <= 8 ms per camera image
and <= 20 ms per sweep.

Usage: python benchmarks/bench_sensors.py [--frames N] [--baseline-rays N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from harness.geometry import polyline_headings
from harness.world.model import ObjectStates
from harness.world.render_camera import CameraRenderer, EgoBoxes
from harness.world.render_lidar import LidarCaster
from harness.world.rig import NUPLAN_LIDAR, nuplan_cameras
from harness.world.roads import build_road_map
from harness.world.sensors import SceneRenderer, boxes_in_ego


def _scene(seed: int = 0, n_objects: int = 40) -> tuple[object, np.ndarray, ObjectStates]:
    """The procedural map, ego poses along one lane, and objects on lanes within 60 m of the first pose."""
    road_map = build_road_map(seed)
    rng = np.random.default_rng(seed)
    lane = max(road_map.lanes.values(), key=lambda ln: len(ln.baseline_xy))
    bl, hd = lane.baseline_xy, polyline_headings(lane.baseline_xy)
    poses = np.column_stack([bl, hd])[len(bl) // 4: len(bl) // 4 + 40]
    cand = []
    for ln in road_map.lanes.values():
        b, h = ln.baseline_xy, polyline_headings(ln.baseline_xy)
        near = np.linalg.norm(b - poses[0, :2], axis=1) < 60
        near &= np.linalg.norm(b - poses[0, :2], axis=1) > 6
        cand.extend(np.column_stack([b[near], h[near]]))
    cand = np.array(cand)
    pick = cand[rng.choice(len(cand), n_objects, replace=len(cand) < n_objects)]
    cats = ["vehicle"] * (n_objects - 10) + ["pedestrian"] * 6 + ["traffic_cone"] * 4
    sizes = {"vehicle": (4.6, 1.9, 1.6), "pedestrian": (0.6, 0.6, 1.75), "traffic_cone": (0.4, 0.4, 0.7)}
    size = np.array([sizes[c] for c in cats])
    objects = ObjectStates(tuple(f"{i:016x}" for i in range(n_objects)), tuple(cats),
                           np.column_stack([pick[:, :2], size[:, 2] / 2]), size, pick[:, 2], np.zeros((n_objects, 2)))
    return road_map, poses, objects


def _slab_scalar(o, d, c, yaw, half) -> float:
    """Entry distance of one ray into one yaw-only box, plain Python (inf on a miss)."""
    cs, sn = np.cos(yaw), np.sin(yaw)
    rel = (o[0] - c[0], o[1] - c[1], o[2] - c[2])
    ol = (cs * rel[0] + sn * rel[1], -sn * rel[0] + cs * rel[1], rel[2])
    dl = (cs * d[0] + sn * d[1], -sn * d[0] + cs * d[1], d[2])
    t0, t1 = -np.inf, np.inf
    for k in range(3):
        if abs(dl[k]) < 1e-12:
            if abs(ol[k]) > half[k]:
                return np.inf
            continue
        a, b = (-half[k] - ol[k]) / dl[k], (half[k] - ol[k]) / dl[k]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
    return t0 if t0 <= t1 and t0 > 0 else np.inf


def _baseline_camera_ms(cam: CameraRenderer, pose: np.ndarray, boxes: EgoBoxes, n: int, rng) -> float:
    """Per-pixel ray casting (ground plane + every box) on ``n`` random pixels, extrapolated to the image."""
    w, h = cam.spec.width, cam.spec.height
    k = cam.spec.intrinsics
    pix = rng.integers(0, w * h, n)
    o = cam.translation
    start = time.perf_counter()
    for p in pix:
        u, v = p % w, p // w
        d = cam.rotation @ np.array([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], 1.0])
        best = -o[2] / d[2] if d[2] < 0 else np.inf
        for i in range(len(boxes)):
            best = min(best, _slab_scalar(o, d, boxes.center[i], boxes.yaw[i], boxes.size[i] / 2))
        if np.isfinite(best):
            cam.texture.materials_at(pose, (o[:2] + best * d[:2])[None])
    return (time.perf_counter() - start) / n * w * h * 1e3


def _baseline_lidar_ms(caster: LidarCaster, boxes: EgoBoxes, n: int, rng) -> float:
    """Per-ray casting (ground + every box) on ``n`` random rays, extrapolated to the whole sweep."""
    rays = rng.integers(0, caster.num_rays, n)
    centers = np.asarray(boxes.center) - NUPLAN_LIDAR.ego_from_lidar[:3, 3]
    ground_z = -NUPLAN_LIDAR.ego_from_lidar[2, 3]
    origins, dirs = caster.rays()
    start = time.perf_counter()
    for r in rays:
        o, d = origins[r], dirs[r]
        best = (ground_z - o[2]) / d[2] if d[2] < 0 else np.inf
        for i in range(len(boxes)):
            best = min(best, _slab_scalar(o, d, centers[i], boxes.yaw[i], boxes.size[i] / 2))
    return (time.perf_counter() - start) / n * caster.num_rays * 1e3


def _median_ms(fn, objects: ObjectStates, poses: np.ndarray) -> float:
    """Median wall time of ``fn(pose, objects)`` over the poses, ms (the median shrugs off other load on the machine)."""
    times = []
    for pose in poses:
        start = time.perf_counter()
        fn(pose, objects)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="frames timed per configuration")
    parser.add_argument("--baseline-rays", type=int, default=1500, help="pixels/rays the baseline casts")
    args = parser.parse_args()
    road_map, poses, objects = _scene()
    rng = np.random.default_rng(0)
    table = Table(title=f"Sensor rendering, {len(objects)} objects, {args.frames} frames (ms per image / sweep)")
    for col in ("sensor", "scale / rays", "init s (map raster on first)", "ours ms", "baseline ms", "speed-up", "target"):
        table.add_column(col, justify="right")
    in_view: list[int] = []
    for scale in (0.25, 0.5):
        t0 = time.perf_counter()
        renderer = SceneRenderer(road_map, nuplan_cameras(scale), NUPLAN_LIDAR, seed=0)
        init_s = time.perf_counter() - t0
        renderer.render_cameras(poses[0], objects)  # warm-up
        ours = _median_ms(renderer.render_cameras, objects, poses[: args.frames])
        ours /= len(renderer.cameras)
        boxes = boxes_in_ego(poses[0], objects)
        in_view.append(int(np.count_nonzero(np.linalg.norm(boxes.center[:, :2], axis=1) < 60)))
        base = np.mean([_baseline_camera_ms(cam, poses[0], boxes, args.baseline_rays // 8, rng)
                        for cam in renderer.cameras.values()])
        cam0 = next(iter(renderer.cameras.values())).spec
        table.add_row("camera (mean of 8)", f"{scale:g} ({cam0.width}x{cam0.height})", f"{init_s:.2f}",
                      f"{ours:.2f}", f"{base:,.0f}", f"{base / ours:,.0f}x", "<= 8 ms" if scale == 0.25 else "")
        if scale == 0.25:
            n_pts = len(renderer.cast_lidar(poses[0], objects))
            ours = _median_ms(renderer.cast_lidar, objects, poses[: args.frames])
            base = _baseline_lidar_ms(renderer.lidar, boxes, args.baseline_rays, rng)
            table.add_row("LiDAR sweep", f"{renderer.lidar.num_rays:,} rays, {n_pts:,} pts", "",
                          f"{ours:.2f}", f"{base:,.0f}", f"{base / ours:,.0f}x", "<= 20 ms")
    console = Console(width=140)
    console.print(table)
    tex = renderer.texture
    console.print(f"objects within 60 m of the ego: {in_view[0]}; map raster {tex.materials.shape[1]}x"
                  f"{tex.materials.shape[0]} at {tex.resolution_m:.3f} m; ours = median per frame; baseline on "
                  f"{args.baseline_rays} sampled pixels/rays per configuration, extrapolated")


if __name__ == "__main__":
    main()
