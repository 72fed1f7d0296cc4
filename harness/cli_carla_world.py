"""``lead-bench world carla``: write the embedded world in LEAD's CARLA route-folder format.

The cached embedded world carries only a small CARLA portion (``<world>/carla``: its train logs, leaderboard rig
at half size, every 16th frame, see :class:`harness.embedded.EmbeddedCarlaOptions`), because rendering LEAD's
rigs with every label costs about 0.3 s per 4 Hz frame at full resolution (0.15 s at ``--camera-scale 0.25``),
minutes for every frame of the default world. This command writes any rig, size and share of frames. It is a
thin shell over :func:`adapters.carla.writer.write_carla_world`.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli_common import console, handle_errors, progress_bar
from harness.errors import ConfigError


@click.command("carla")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output root: data/<scenario>/<route>/ per log and splits/<split>.txt.")
@click.option("--rig", type=click.Choice(["carla_lb_3cam", "navsim_4cam", "waymo_front_3cam"]),
              default="carla_lb_3cam", show_default=True, help="Camera rig to render (adapters/carla/rigs.py).")
@click.option("--seed", type=int, default=0, show_default=True, help="World seed.")
@click.option("--logs", type=int, default=8, show_default=True, help="Number of logs (routes).")
@click.option("--duration", type=float, default=30.0, show_default=True, help="Seconds per log.")
@click.option("--camera-scale", type=float, default=1.0, show_default=True, help="Image size relative to the rig's.")
@click.option("--max-frames", type=int, default=None, help="At most this many 4 Hz frames per route.")
@click.option("--frame-stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Write every N-th 4 Hz frame (file numbers stay LEAD's).")
@click.option("--no-perturbed", is_flag=True, help="Skip the *_perturbated copies.")
@handle_errors
def world_carla(out: Path, rig: str, seed: int, logs: int, duration: float, camera_scale: float,
                max_frames: int | None, no_perturbed: bool, frame_stride: int = 1) -> None:
    """Generate the embedded world and write it as LEAD route folders with perception labels."""
    from adapters.carla.writer import CarlaWriteOptions, write_carla_world
    from harness.world.build import WorldConfig, build_world

    if not 0.05 <= camera_scale <= 1.0:
        raise ConfigError(f"--camera-scale must be in [0.05, 1], got {camera_scale}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"--max-frames must be >= 1, got {max_frames}")
    world = build_world(WorldConfig(seed=seed, num_logs=logs, duration_s=duration))
    options = CarlaWriteOptions(rig=rig, camera_scale=camera_scale, max_frames=max_frames, perturbed=not no_perturbed,
                                frame_stride=frame_stride)
    with progress_bar() as progress:
        task = progress.add_task("writing CARLA routes", total=len(world.logs))
        root = write_carla_world(world, out, options, on_log_done=lambda _n: progress.advance(task))
    console.print(f"{len(world.logs)} routes written to [bold]{root}[/] (read with adapters.carla.reader.CarlaReader)")


def register(groups: dict[str, click.Group]) -> None:
    groups["world"].add_command(world_carla)
