"""TransFuser v6 (LEAD, arXiv 2512.20563), re-implemented from the spec (``specs/lead_tfv6.md`` §1).

Image and BEV branches (two CNNs) advance stage by stage; after each of the 4 stages a fusion transformer
mixes pooled tokens of both and the result is added back to both branches. A top-down pyramid turns the last
BEV map into the perception grid (BEV-semantic and CenterNet heads per source); a 6-layer transformer decoder
reads the BEV tokens plus status tokens (speed, acceleration, command, target points, past ego poses) and its
queries predict cumulative deltas (waypoints, headings, route) and target-speed logits.

Differences from LEAD's code, deliberate (spec §7): the past-pose tokens are built and used; acceleration is
signed; all outputs are in the canonical frame (nothing flips); per-sample validity masks replace source ids.
Speed: convolutions and the fusion run channels-last, resizing and pooling are matrix products
(:class:`~harness.model.layers.Resample`), the fusion's query/key/value projections are one matrix, and in
latent mode the (batch-independent) BEV stem and first stage run once and broadcast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from harness.model.backbones import build_backbone, feature_sizes
from harness.model.io import BoxPrediction, ModelInputs, TFv6Config, TFv6Prediction
from harness.model.layers import FusionTransformer, Resample, conv3x3_relu, sine_embedding_2d
from harness.model.radar import RadarDetector, RadarPlannerTokens

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class TFv6Backbone(nn.Module):
    """Two CNNs in lock-step with a fusion transformer after each stage, and the top-down BEV pyramid."""

    def __init__(self, cfg: TFv6Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_encoder = build_backbone(cfg.image_backbone, 3)
        self.bev_encoder = build_backbone(cfg.bev_backbone, 2 if cfg.latent else cfg.lidar_channels)
        ci, cb = self.image_encoder.channels, self.bev_encoder.channels
        self.image_channels, self.bev_channels = ci[-1], cb[-1]
        ia, ba = cfg.image_anchors, cfg.bev_anchors
        n_tok = ia[0] * ia[1] + ba[0] * ba[1]
        self.bev_to_image = nn.ModuleList(nn.Linear(cb[i], ci[i]) for i in range(4))
        self.image_to_bev = nn.ModuleList(nn.Linear(ci[i], cb[i]) for i in range(4))
        self.fusion = nn.ModuleList(
            FusionTransformer(ci[i], n_tok, cfg.fusion_layers, cfg.fusion_heads, cfg.fusion_mlp_ratio,
                              cfg.fusion_dropout) for i in range(4))
        # per-stage spatial sizes, so pooling / upsampling matrices are fixed buffers
        ih, iw = feature_sizes(cfg.image_height)[1:], feature_sizes(cfg.image_width)[1:]
        bh, bw = feature_sizes(cfg.bev_height_px)[1:], feature_sizes(cfg.bev_width_px)[1:]
        self.image_sizes = [(ih[i], iw[i]) for i in range(4)]
        self.bev_sizes = [(bh[i], bw[i]) for i in range(4)]
        self.pool_image = nn.ModuleList(Resample(self.image_sizes[i], ia, "avg") for i in range(4))
        self.pool_bev = nn.ModuleList(Resample(self.bev_sizes[i], ba, "avg") for i in range(4))
        self.up_image = nn.ModuleList(Resample(ia, self.image_sizes[i], "bilinear") for i in range(4))
        self.up_bev = nn.ModuleList(Resample(ba, self.bev_sizes[i], "bilinear") for i in range(4))
        # top-down pyramid: 1x1 to bev_feature_channels, x2 bilinear + 3x3, resize to the grid + 3x3
        c = cfg.bev_feature_channels
        self.c5_conv = nn.Conv2d(cb[-1], c, 1)
        self.up_conv5 = nn.Conv2d(c, c, 3, padding=1)
        self.up_conv4 = nn.Conv2d(c, c, 3, padding=1)
        s5 = self.bev_sizes[-1]
        self.top_up1 = Resample(s5, (2 * s5[0], 2 * s5[1]), "bilinear")
        self.top_up2 = Resample((2 * s5[0], 2 * s5[1]), cfg.grid_shape, "bilinear")
        self.channels_last = True  # convolutions in channels-last layout (False: the benchmark's baseline)
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("img_scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("img_shift", -mean / std, persistent=False)
        if cfg.latent:  # row and column coordinates in [0, 1]
            ys = torch.linspace(0, 1, cfg.bev_height_px)
            xs = torch.linspace(0, 1, cfg.bev_width_px)
            grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))[None]
            self.register_buffer("latent_grid", grid, persistent=False)

    def _dtype(self, device: torch.device) -> torch.dtype:
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
        return self.img_scale.dtype

    def forward(self, inputs: ModelInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (BEV features (B, C5b, Hb/32, Wb/32), image features (B, C5i, H/32, W/32))."""
        cfg = self.cfg
        img = inputs.images
        b, _, h, w = img.shape
        if (h, w) != (cfg.image_height, cfg.image_width):
            raise ValueError(f"TFv6: images are {h}x{w}, the config expects {cfg.image_height}x{cfg.image_width}")
        dt = self._dtype(img.device)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        # ImageNet normalisation, then one cast to the compute dtype and layout
        x_img = torch.addcmul(self.img_shift, img.to(self.img_scale.dtype), self.img_scale)
        x_img = x_img.to(dtype=dt, memory_format=fmt)
        if cfg.latent:
            x_bev = self.latent_grid.to(dtype=dt, memory_format=fmt)  # batch 1, broadcast at the first fusion
        else:
            if inputs.lidar_bev is None:
                raise ValueError("TFv6: the config is not latent, so ModelInputs.lidar_bev is required")
            want = (b, cfg.lidar_channels, cfg.bev_height_px, cfg.bev_width_px)
            if tuple(inputs.lidar_bev.shape) != want:
                raise ValueError(f"TFv6: lidar_bev is {tuple(inputs.lidar_bev.shape)}, expected {want}")
            x_bev = inputs.lidar_bev.to(dtype=dt, memory_format=fmt)
        x_img = self.image_encoder.forward_stem(x_img)
        x_bev = self.bev_encoder.forward_stem(x_bev)
        for i in range(4):
            x_img = self.image_encoder.forward_stage(i, x_img)
            x_bev = self.bev_encoder.forward_stage(i, x_bev)
            x_img, x_bev = self._fuse(i, x_img, x_bev, b)
        return x_bev, x_img

    def _fuse(self, i: int, x_img: torch.Tensor, x_bev: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        ti = self.pool_image[i](x_img)  # (B, Ci, ah, aw)
        tb = self.pool_bev[i](x_bev)  # (B or 1, Cb, bh, bw)
        ah, aw = ti.shape[2:]
        bh, bw = tb.shape[2:]
        ti = ti.permute(0, 2, 3, 1).reshape(b, ah * aw, -1)
        tb = self.bev_to_image[i](tb.permute(0, 2, 3, 1).reshape(tb.shape[0], bh * bw, -1))
        tokens = torch.cat((ti.to(tb.dtype), tb.expand(b, -1, -1)), dim=1)
        out = self.fusion[i](tokens)
        oi = out[:, : ah * aw].reshape(b, ah, aw, -1)
        ob = self.image_to_bev[i](out[:, ah * aw:]).reshape(b, bh, bw, -1)
        oi = oi.to(x_img.dtype).permute(0, 3, 1, 2)  # channels-last views
        ob = ob.to(x_bev.dtype).permute(0, 3, 1, 2)
        ui, ub = self.up_image[i](oi), self.up_bev[i](ob)
        if not self.channels_last:
            ui, ub = ui.contiguous(), ub.contiguous()
        return x_img + ui, x_bev + ub

    def top_down(self, bev_features: torch.Tensor) -> torch.Tensor:
        """(B, C5b, h5, w5) -> the perception grid (B, bev_feature_channels, *grid_shape)."""
        p5 = F.relu(self.c5_conv(bev_features), inplace=True)
        p4 = F.relu(self.up_conv5(self.top_up1(p5)), inplace=True)
        return F.relu(self.up_conv4(self.top_up2(p4)), inplace=True)


class PlanningDecoder(nn.Module):
    """Transformer decoder over BEV tokens + status tokens; queries [route | waypoints | target speed]."""

    def __init__(self, cfg: TFv6Config, bev_channels: int, bev_hw: tuple[int, int]) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.token_dim
        self.bev_adapter = nn.Linear(bev_channels, d)
        self.register_buffer("bev_pos", sine_embedding_2d(bev_hw[0], bev_hw[1], d)[None], persistent=False)
        self.speed_encoder = nn.Linear(1, d) if cfg.use_speed else None
        self.acceleration_encoder = nn.Linear(1, d) if cfg.use_acceleration else None
        self.command_encoder = nn.Linear(4, d) if cfg.use_command else None
        self.tp_encoder = nn.Linear(2, d) if cfg.num_target_points else None
        if cfg.num_past_poses:
            self.past_encoder = nn.Linear(4, d)  # (x, y) / scale, cos, sin of the heading
            self.past_missing = nn.Parameter(torch.zeros(1, 1, d))
        self.radar_tokens = RadarPlannerTokens(cfg) if cfg.radar and cfg.radar_planner_tokens else None
        self.status_pos = nn.Parameter(torch.empty(1, max(1, cfg.num_status_tokens), d).uniform_())
        nq = cfg.num_route_points + cfg.num_waypoints + int(cfg.predict_target_speed)
        self.query = nn.Parameter(torch.empty(1, nq, d).uniform_())
        layer = nn.TransformerDecoderLayer(d, cfg.planner_heads, cfg.planner_ffn_dim, cfg.planner_dropout,
                                           activation=nn.GELU(), batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, cfg.planner_layers, norm=nn.LayerNorm(d))
        self.wp_head = nn.Linear(d, 2)
        self.heading_head = nn.Linear(d, 1) if cfg.predict_headings else None
        self.route_head = nn.Linear(d, 2) if cfg.predict_route else None
        if cfg.predict_target_speed:
            self.speed_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True),
                                            nn.Linear(d, len(cfg.target_speed_classes_mps)))
            self.register_buffer("speed_classes", torch.tensor(cfg.target_speed_classes_mps), persistent=False)
        self.register_buffer("tp_scale", torch.tensor(cfg.target_point_scale_m), persistent=False)

    def status_tokens(self, inputs: ModelInputs, dtype: torch.dtype,
                      radar: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[torch.Tensor]:
        cfg = self.cfg
        b = inputs.batch_size
        out: list[torch.Tensor] = []
        if self.speed_encoder is not None:
            out.append(self.speed_encoder((inputs.speed_mps / cfg.max_speed_mps)[:, None, None]))
        if self.acceleration_encoder is not None:
            out.append(self.acceleration_encoder((inputs.acceleration_mps2 / cfg.max_acceleration_mps2)[:, None, None]))
        if self.command_encoder is not None:
            out.append(self.command_encoder(inputs.command.to(self.query.dtype))[:, None])
        if self.tp_encoder is not None:
            tp = inputs.target_points_m
            if tp is None or tp.shape[1] != cfg.num_target_points:
                raise ValueError(f"TFv6: the config needs {cfg.num_target_points} target points per sample, got "
                                 f"{None if tp is None else tuple(tp.shape)}")
            out.append(self.tp_encoder(tp / self.tp_scale))
        if cfg.num_past_poses:
            pp = inputs.past_poses
            if pp is None or pp.shape[1] != cfg.num_past_poses:
                raise ValueError(f"TFv6: the config needs {cfg.num_past_poses} past poses per sample, got "
                                 f"{None if pp is None else tuple(pp.shape)}")
            feats = torch.cat((pp[..., :2] / cfg.past_position_scale_m, torch.cos(pp[..., 2:]),
                               torch.sin(pp[..., 2:])), dim=-1)
            tok = self.past_encoder(feats)
            # always through torch.where, so the "missing" embedding takes part in every step (DDP needs every
            # parameter in the graph); an all-True mask selects the encoded poses
            valid = inputs.past_valid if inputs.past_valid is not None else torch.ones(
                pp.shape[:2], dtype=torch.bool, device=pp.device)
            tok = torch.where(valid[..., None], tok, self.past_missing.to(tok.dtype))
            out.append(tok)
        if self.radar_tokens is not None:
            if radar is None:
                raise ValueError("TFv6: the planner takes radar tokens, but no radar detector output was given")
            out.append(self.radar_tokens(*radar))
        if not out:  # a planner with no status input still gets one (constant) token
            out.append(torch.zeros(b, 1, cfg.token_dim, device=self.query.device, dtype=dtype))
        return out

    def forward(self, bev_features: torch.Tensor, inputs: ModelInputs,
                radar: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """``radar``: the radar detector's (query features, detections) when the planner takes radar tokens."""
        cfg = self.cfg
        b = bev_features.shape[0]
        tok = self.bev_adapter(bev_features.permute(0, 2, 3, 1).reshape(b, -1, bev_features.shape[1]))
        tok = tok + self.bev_pos.to(tok.dtype)
        status = torch.cat([t.to(tok.dtype) for t in self.status_tokens(inputs, tok.dtype, radar)], dim=1)
        status = status + self.status_pos.to(tok.dtype)
        memory = torch.cat((tok, status), dim=1)
        q = self.decoder(self.query.expand(b, -1, -1).to(tok.dtype), memory)
        i = 0
        route = None
        if self.route_head is not None:
            route = torch.cumsum(self.route_head(q[:, : cfg.num_route_points]).float(), dim=1)
            i = cfg.num_route_points
        qw = q[:, i: i + cfg.num_waypoints]
        waypoints = torch.cumsum(self.wp_head(qw).float(), dim=1)
        headings = None
        if self.heading_head is not None:
            headings = torch.cumsum(self.heading_head(qw).float()[..., 0], dim=1)
        speed_logits = None
        if cfg.predict_target_speed:
            speed_logits = self.speed_head(q[:, -1]).float()
        return waypoints, headings, route, speed_logits


class BEVSemanticHead(nn.Module):
    """3x3 conv + ReLU + 1x1 conv to K classes on the perception grid, bilinear up to the BEV raster."""

    def __init__(self, cfg: TFv6Config, num_classes: int) -> None:
        super().__init__()
        c = cfg.bev_feature_channels
        self.conv = conv3x3_relu(c, c)
        self.out = nn.Conv2d(c, num_classes, 1, bias=False)
        self.up = Resample(cfg.grid_shape, (cfg.bev_height_px, cfg.bev_width_px), "bilinear")

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.up(self.out(self.conv(grid)))


class CenterNetHead(nn.Module):
    """Six CenterNet branches (heatmap, size, offset, yaw bins, yaw residual, [velocity]). Each branch is a
    3x3 conv + ReLU + 1x1 conv; the six 3x3 convs run as one convolution of 6x the width."""

    def __init__(self, cfg: TFv6Config, num_classes: int) -> None:
        super().__init__()
        c = cfg.bev_feature_channels
        self.outs = [num_classes, 2, 2, cfg.num_yaw_bins, 1] + ([1] if cfg.box_velocity else [])
        self.conv = conv3x3_relu(c, c * len(self.outs))
        self.heads = nn.ModuleList(nn.Conv2d(c, o, 1) for o in self.outs)
        self.c = c
        nn.init.constant_(self.heads[0].bias, -2.19)  # prior 0.1 for the heatmap (CenterNet practice)

    def forward(self, grid: torch.Tensor) -> BoxPrediction:
        f = self.conv(grid)
        o = [head(f[:, k * self.c:(k + 1) * self.c]) for k, head in enumerate(self.heads)]
        return BoxPrediction(heatmap_logits=o[0], size_m=o[1], offset=o[2], yaw_logits=o[3], yaw_res=o[4],
                             velocity_mps=o[5] if len(o) > 5 else None)


class PerspectiveHead(nn.Module):
    """Image-space decoder from the stride-32 image features: conv pairs with x8 and x4 bilinear steps, then
    a resize to the image size (LEAD's PerspectiveDecoder)."""

    def __init__(self, cfg: TFv6Config, in_channels: int, out_channels: int, feat_hw: tuple[int, int]) -> None:
        super().__init__()
        c0, c1, c2 = cfg.perspective_channels
        self.block1 = nn.Sequential(conv3x3_relu(in_channels, c0), conv3x3_relu(c0, c1))
        self.block2 = nn.Sequential(conv3x3_relu(c1, c2), conv3x3_relu(c2, c2))
        self.block3 = nn.Sequential(conv3x3_relu(c2, c2), nn.Conv2d(c2, out_channels, 3, padding=1))
        h, w = feat_hw
        self.up1 = Resample((h, w), (8 * h, 8 * w), "bilinear")
        self.up2 = Resample((8 * h, 8 * w), (32 * h, 32 * w), "bilinear")
        self.up3 = Resample((32 * h, 32 * w), (cfg.image_height, cfg.image_width), "bilinear")

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.up1(self.block1(feats))
        x = self.up2(self.block2(x))
        return self.block3(self.up3(x))


class TFv6(nn.Module):
    """TransFuser v6. ``forward(inputs) -> TFv6Prediction``; see :mod:`harness.model.io` for the contract."""

    def __init__(self, cfg: TFv6Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = TFv6Backbone(cfg)
        bb = self.backbone
        self.planner = PlanningDecoder(cfg, bb.bev_channels, bb.bev_sizes[-1]) if cfg.use_planner else None
        self.bev_semantic_heads = nn.ModuleDict({s: BEVSemanticHead(cfg, k) for s, k in cfg.bev_semantic_classes})
        self.box_heads = nn.ModuleDict({s: CenterNetHead(cfg, k) for s, k in cfg.box_classes})
        self.image_semantic_head = (PerspectiveHead(cfg, bb.image_channels, cfg.image_semantic_classes,
                                                    bb.image_sizes[-1]) if cfg.image_semantic_classes else None)
        self.depth_head = (PerspectiveHead(cfg, bb.image_channels, 1, bb.image_sizes[-1])
                           if cfg.predict_depth else None)
        self.radar_detector = (RadarDetector(cfg, bb.bev_channels, bb.bev_sizes[-1]) if cfg.radar else None)

    def forward(self, inputs: ModelInputs) -> TFv6Prediction:
        bev, img = self.backbone(inputs)
        waypoints = headings = route = speed_logits = speed = None
        radar = None
        if self.radar_detector is not None:
            radar = self.radar_detector(bev, inputs.radar_points, inputs.speed_mps)
        if self.planner is not None:
            waypoints, headings, route, speed_logits = self.planner(bev, inputs, radar)
            if speed_logits is not None:
                speed = (speed_logits.softmax(-1) * self.planner.speed_classes).sum(-1)
        bev_sem: dict[str, torch.Tensor] = {}
        boxes: dict[str, BoxPrediction] = {}
        if len(self.bev_semantic_heads) or len(self.box_heads):
            grid = self.backbone.top_down(bev)
            bev_sem = {s: head(grid) for s, head in self.bev_semantic_heads.items()}
            boxes = {s: head(grid) for s, head in self.box_heads.items()}
        sem = self.image_semantic_head(img) if self.image_semantic_head is not None else None
        depth = self.depth_head(img)[:, 0] if self.depth_head is not None else None
        return TFv6Prediction(waypoints_m=waypoints, headings_rad=headings, route_m=route,
                              target_speed_logits=speed_logits, target_speed_mps=speed, bev_semantic_logits=bev_sem,
                              boxes=boxes, image_semantic_logits=sem, depth_m=depth,
                              radar_detections=None if radar is None else radar[1])

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per top-level part (image / BEV encoder, fusion, planner, heads) and in total."""
        parts: dict[str, int] = {}
        for name, p in self.named_parameters():
            key = ".".join(name.split(".")[:2]) if name.startswith(("backbone.", "bev_semantic", "box_")) \
                else name.split(".")[0]
            if key.startswith("backbone.") and key.split(".")[1] not in ("image_encoder", "bev_encoder", "fusion"):
                key = "backbone.adapters_and_top_down"
            parts[key] = parts.get(key, 0) + p.numel()
        parts["total"] = sum(p.numel() for p in self.parameters())
        return parts
