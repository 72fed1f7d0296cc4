"""A random batch for the tiny preset (shared by the model tests)."""

from __future__ import annotations

import torch

from harness.model import BEVSemanticTarget, BoxTarget, ModelInputs, ModelTargets, TFv6Config


def tiny_batch(cfg: TFv6Config, b: int = 2, seed: int = 0) -> tuple[ModelInputs, ModelTargets]:
    g = torch.Generator().manual_seed(seed)
    inputs = ModelInputs(
        images=torch.randint(0, 256, (b, 3, cfg.image_height, cfg.image_width), dtype=torch.uint8, generator=g),
        speed_mps=torch.rand(b, generator=g) * 10, acceleration_mps2=torch.randn(b, generator=g),
        command=torch.eye(4)[torch.arange(b) % 4],
        lidar_bev=None if cfg.latent else torch.rand(b, cfg.lidar_channels, cfg.bev_height_px, cfg.bev_width_px,
                                                     generator=g),
        target_points_m=torch.randn(b, cfg.num_target_points, 2, generator=g) * 20 if cfg.num_target_points else None,
        past_poses=torch.randn(b, cfg.num_past_poses, 3, generator=g) if cfg.num_past_poses else None)
    h, w = cfg.grid_shape
    n = cfg.num_waypoints
    centers = torch.zeros(b, h, w)
    centers[:, h // 2, w // 3] = 1.0
    boxes = {src: BoxTarget(heatmap=torch.clamp(torch.rand(b, k, h, w, generator=g) * 0.3 + centers[:, None], max=1.0),
                            size_m=torch.rand(b, 2, h, w, generator=g) * 2, offset=torch.rand(b, 2, h, w, generator=g),
                            yaw_class=torch.randint(0, cfg.num_yaw_bins, (b, h, w), generator=g),
                            yaw_res=torch.randn(b, 1, h, w, generator=g) * 0.1, center_mask=centers,
                            num_boxes=centers.sum((1, 2)), valid=torch.ones(b, dtype=torch.bool))
             for src, k in cfg.box_classes}
    bev = {src: BEVSemanticTarget(torch.randint(0, k, (b, cfg.bev_height_px, cfg.bev_width_px), generator=g),
                                  torch.ones(b, dtype=torch.bool)) for src, k in cfg.bev_semantic_classes}
    targets = ModelTargets(
        waypoints_m=torch.randn(b, n, 2, generator=g).cumsum(1), waypoints_valid=torch.ones(b, n, dtype=torch.bool),
        headings_rad=torch.randn(b, n, generator=g) * 0.1, headings_valid=torch.ones(b, n, dtype=torch.bool),
        bev_semantic=bev, boxes=boxes)
    return inputs, targets
