"""WOD-E2E loading benchmarks: shard indexing, and samples with the 3 front cameras at full and 1/4 scale.

Records are built like the release's: 8 JPEG cameras at the release's sizes (972x1079 front and side,
972x587 / 972x551 rear), rendered by the embedded world at full scale with sensor noise added so the JPEGs
compress like camera images (the release's front JPEGs are ~330 KB; sizes are printed), plus 4 Hz states and
three rater trajectories. A few rendered frames are repeated under distinct frame names to fill the shard.
The shard is in the page cache (as on a second pass over real data). Baselines measured in the same run:

- index: lead-bench's index (seek from header to header, read the frame name at the start of each record and
  the short tail after the images) against a naive scan (read every record in full with its CRC and parse it);
- load: the front three cameras decoded at 1/4 scale in the DCT domain (Pillow ``draft``) against a full-size
  decode (scale 1) and against a full-size decode followed by a 4x box downscale (the same output size);
- index cache: the same index read back from lead-bench's on-disk index cache (a later run on the split);
- labels: reading states and raters without images, and with the record's data CRC checked (a full read of
  the record, what scoring does).

Single process, so samples/s is per core. Usage: python benchmarks/bench_waymo_loading.py [--records N]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from adapters.waymo import schema
from adapters.waymo.reader import FRONT_CAMERAS, WaymoReader
from adapters.waymo.tfrecord import TFRecordReader, write_records
from adapters.waymo.world_raters import DrivableSurface, ego_states, rated_trajectories, valid_steps
from adapters.waymo.world_writer import COMMAND_TO_INTENT, make_frame
from harness.world.build import WorldConfig, build_world
from harness.world.rig_waymo import WAYMO_RIG, waymo_cameras
from harness.world.sensors import SceneRenderer

DISTINCT_FRAMES = 3


def build_shard(path: Path, n_records: int, quality: int = 90) -> tuple[int, dict[str, int]]:
    """Write ``n_records`` release-like records; returns the shard size and the mean JPEG size per camera."""
    world = build_world(WorldConfig(seed=0, num_logs=1, duration_s=12.0))
    log = world.logs[0]
    cams = waymo_cameras(1.0)
    renderer = SceneRenderer(log.map, cams, WAYMO_RIG, seed=log.seed)
    surface = DrivableSurface(log.map)
    rng = np.random.default_rng(0)
    frames = []
    sizes: dict[str, list[int]] = {c.name: [] for c in cams}
    for step in list(valid_steps(log))[-DISTINCT_FRAMES:]:
        f = log.frames[step]
        images = renderer.render_cameras(f.ego_pose, f.objects)
        jpegs = []
        for c in cams:
            noisy = np.clip(images[c.name] + rng.normal(0, 6, images[c.name].shape), 0, 255).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(noisy).save(buf, format="JPEG", quality=quality)
            jpegs.append((c, buf.getvalue()))
            sizes[c.name].append(len(buf.getvalue()))
        s = ego_states(log, step)
        rated = rated_trajectories(log, step, surface)
        frames.append(dict(past_xy=s.past_xy, past_velocity_xy=s.past_velocity_xy, past_accel_xy=s.past_accel_xy,
                           intent=COMMAND_TO_INTENT[f.driving_command], future_xy=s.future_xy,
                           raters=list(zip(rated.trajectories_xy, rated.scores)), cameras=jpegs))
    records = (make_frame(f"{i:032x}-{100 + i % 50:03d}", **frames[i % len(frames)]).SerializeToString()
               for i in range(n_records))
    write_records(path, records)
    return path.stat().st_size, {k: int(np.mean(v)) for k, v in sizes.items()}


def timed(fn: Callable[[], object], min_s: float = 2.0) -> float:
    """Seconds per call (best of repeated runs lasting at least ``min_s`` in total)."""
    fn()  # warm up (page cache, imports)
    best, total = float("inf"), 0.0
    while total < min_s:
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        best, total = min(best, dt), total + dt
    return best


def naive_index(shard: Path) -> dict[str, int]:
    """Baseline: read every record (CRC-checked) and parse the whole E2EDFrame for its name."""
    out = {}
    for rec, data in TFRecordReader(shard).records():
        out[schema.E2EDFrame.FromString(data).frame.context.name] = rec.offset
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=120, help="records in the shard (~2.5 MB each)")
    args = ap.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shard = root / "val_202504211843.tfrecord-00000-of-00001"
        size, jpeg_sizes = build_shard(shard, args.records)
        mb = size / 1e6
        console.print(f"shard: {args.records} records, {mb:.0f} MB ({mb / args.records:.2f} MB per record); "
                      f"mean JPEG bytes: " + ", ".join(f"{k} {v // 1000} KB" for k, v in jpeg_sizes.items()))

        t_index = timed(lambda: WaymoReader(root, "val").index())
        t_naive = timed(lambda: naive_index(shard))
        t_verify = timed(lambda: WaymoReader(root, "val", verify_data=True).index())
        cache_dir = root / "index-cache"
        WaymoReader(root, "val", index_cache=cache_dir).index()  # fills the cache
        t_cached = timed(lambda: WaymoReader(root, "val", index_cache=cache_dir).index())
        table = Table(title="Shard indexing")
        for col in ("method", "records/s", "MB/s of shard", "vs naive"):
            table.add_column(col, justify="right" if col != "method" else "left")
        for label, t in (("lead-bench index (headers + name + tail)", t_index),
                         ("lead-bench index from the on-disk index cache", t_cached),
                         ("lead-bench index, verify_data=True (full read, CRCs)", t_verify),
                         ("naive: read + CRC + parse every record (baseline)", t_naive)):
            table.add_row(label, f"{args.records / t:,.0f}", f"{mb / t:,.0f}", f"{t_naive / t:.1f}x")
        console.print(table)

        reader = WaymoReader(root, "val")
        refs = reader.index()
        n = min(len(refs), 12)

        def load(scale: int) -> None:
            for ref in refs[:n]:
                s = reader.load(ref, image_scale=scale, cameras=FRONT_CAMERAS)
                for cam in s.observation.cameras.values():
                    cam.load_image()

        def load_full_then_reduce() -> None:
            for ref in refs[:n]:
                s = reader.load(ref, image_scale=1, cameras=FRONT_CAMERAS)
                for cam in s.observation.cameras.values():
                    Image.fromarray(cam.load_image()).reduce(4)

        def labels_only(verify_crc: bool = False) -> None:
            for ref in refs[:n]:
                reader.labels(ref, verify_crc=verify_crc)

        t1, t4 = timed(lambda: load(1)), timed(lambda: load(4))
        t_reduce, t_labels = timed(load_full_then_reduce), timed(labels_only)
        t_labels_crc = timed(lambda: labels_only(verify_crc=True))
        s1 = reader.load(refs[0], cameras=FRONT_CAMERAS).observation.cameras["FRONT"]
        s4 = reader.load(refs[0], image_scale=4, cameras=FRONT_CAMERAS).observation.cameras["FRONT"]
        table = Table(title="Sample loading, 3 front cameras decoded (one process = per core)")
        for col in ("method", "front image", "samples/s", "ms/sample", "vs full decode"):
            table.add_column(col, justify="right" if col != "method" else "left")
        for label, t, size_ in (("full scale (baseline)", t1, f"{s1.width}x{s1.height}"),
                                ("1/4 scale, full decode + 4x reduce (baseline)", t_reduce,
                                 f"{s4.width}x{s4.height}"),
                                ("1/4 scale, DCT-domain draft", t4, f"{s4.width}x{s4.height}"),
                                ("labels only (no images)", t_labels, "-"),
                                ("labels, record's data CRC checked (scoring)", t_labels_crc, "-")):
            table.add_row(label, size_, f"{n / t:,.1f}", f"{1000 * t / n:.2f}", f"{t1 / t:.1f}x")
        console.print(table)
        console.print("Timings vary by about ±30 % between runs on the shared 2-core machine.")


if __name__ == "__main__":
    main()
