"""TFv6 policy: one or more trained checkpoints (an ensemble averages their waypoints and headings).

The checkpoint carries its resolved training configuration, so the agent rebuilds the same model and the same
input pipeline (rig, crops, waypoint times) that training used. Inference is batched, runs under bf16 autocast
on a GPU (fp32 on CPU) and maps the model's waypoints (canonical frame, ``waypoint_interval_s`` apart) to the
sampling the benchmark asks for; a longer horizon than the model predicts holds the last pose. Headings come
from the heading head (LEAD) or, with ``headings="positions"`` (config ``headings_from``), from the direction
of travel along the predicted waypoints, which keeps poses consistent while the heading head is still poor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.agents.base import SensorNeeds
from harness.errors import ConfigError, DataError
from harness.trajectory import Trajectory, TrajectorySampling, headings_from_positions, resample_poses
from harness.types import Observation

CHECKPOINT_KINDS = ("lead-bench/tfv6-train", "lead-bench/tfv6")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A TFv6 checkpoint, loaded with ``weights_only=True`` (tensors and plain values only)."""
    p = Path(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise DataError("checkpoint not found", path=p) from exc
    except Exception as exc:  # torch raises several types for foreign or corrupt files
        raise DataError(f"cannot load checkpoint ({type(exc).__name__}: {exc})", path=p) from exc
    if not isinstance(ckpt, dict) or ckpt.get("kind") not in CHECKPOINT_KINDS:
        raise DataError(f"not a TFv6 checkpoint (expected kind in {CHECKPOINT_KINDS})", path=p)
    return ckpt


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class TFv6Agent:
    """Runs TFv6 checkpoint(s) on observations of one source's rig.

    Args:
        checkpoint: a checkpoint path, or several (an ensemble: waypoints and headings are averaged).
        source: whose rig the observations come from (``"navsim"``, ``"waymo"``, ``"carla"``).
        device: ``"auto"`` (GPU if available), ``"cpu"``, ``"cuda:0"``, ...
        batch_size: observations per forward pass.
    """

    name = "tfv6"
    privileged = False

    def __init__(self, checkpoint: str | Path | Sequence[str | Path], source: str = "navsim", device: str = "auto",
                 batch_size: int = 32, headings: str | None = None) -> None:
        from harness.model.tfv6 import TFv6
        from harness.training.config import TrainConfig

        paths = [checkpoint] if isinstance(checkpoint, str | Path) else list(checkpoint)
        if not paths:
            raise ConfigError("the tfv6 agent needs at least one --ckpt")
        models, spec = [], None
        for p in paths:
            ck = load_checkpoint(p)
            cfg = TrainConfig.from_dict(ck["train_config"])
            s = cfg.input_spec()
            if spec is not None and (s.model.image_height, s.model.image_width, s.model.num_waypoints,
                                     s.waypoint_interval_s, s.rigs.get(source)) != (
                    spec.model.image_height, spec.model.image_width, spec.model.num_waypoints,
                    spec.waypoint_interval_s, spec.rigs.get(source)):
                raise ConfigError(f"checkpoint {p} has another input geometry or waypoint timing than {paths[0]}; "
                                  "an ensemble needs equal ones")
            spec = spec or s
            model = TFv6(cfg.model)
            try:
                model.load_state_dict(ck["model"])
            except RuntimeError as exc:
                raise DataError(f"checkpoint weights do not fit its own config ({exc})", path=p) from exc
            models.append(model)
        self._setup(models, spec, source, pick_device(device), batch_size, headings or cfg.headings_from)
        self.checkpoints = [Path(p) for p in paths]

    @classmethod
    def from_models(cls, models: Sequence[torch.nn.Module], spec: Any, source: str, device: torch.device,
                    batch_size: int = 32, headings: str = "model") -> TFv6Agent:
        """An agent over models already in memory (validation during training)."""
        agent = cls.__new__(cls)
        agent._setup(list(models), spec, source, device, batch_size, headings)
        agent.checkpoints = []
        return agent

    def _setup(self, models: list[torch.nn.Module], spec: Any, source: str, device: torch.device,
               batch_size: int, headings: str) -> None:
        if headings not in ("model", "positions"):
            raise ConfigError(f"headings must be model | positions, got {headings!r}")
        self.headings = headings
        self.models = [m.to(device).eval() for m in models]
        self.spec = spec
        self.source = source
        self.rig = spec.rig(source)
        self.device = device
        self.batch_size = batch_size
        self.sampling = TrajectorySampling(spec.model.num_waypoints, spec.waypoint_interval_s)

    def sensor_needs(self) -> SensorNeeds:
        return SensorNeeds(cameras=self.rig.cameras, lidar=not self.spec.model.latent)

    @torch.no_grad()
    def predict(self, observations: Sequence[Observation]) -> np.ndarray:
        """Poses ``(B, N, 3)`` (x, y, heading) at the model's waypoint times, ensemble-averaged."""
        from harness.training.inputs import collate_inputs, encode_observation

        out = []
        for start in range(0, len(observations), self.batch_size):
            chunk = observations[start:start + self.batch_size]
            enc = [encode_observation(o, self.source, self.spec) for o in chunk]
            inputs = collate_inputs(enc, self.spec.model).to(self.device)
            wps, hds = [], []
            use_bf16 = self.device.type == "cuda"
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                for m in self.models:
                    pred = m(inputs)
                    wps.append(pred.waypoints_m.float())
                    if pred.headings_rad is not None:
                        hds.append(pred.headings_rad.float())
            xy = torch.stack(wps).mean(0).cpu().double().numpy()
            if hds and self.headings == "model":  # average headings on the circle
                h = torch.stack(hds)
                head = torch.atan2(torch.sin(h).mean(0), torch.cos(h).mean(0)).cpu().double().numpy()
            else:
                head = np.stack([headings_from_positions(p) for p in xy])
            out.append(np.concatenate([xy, head[..., None]], axis=-1))
        return np.concatenate(out) if out else np.zeros((0, self.sampling.num_poses, 3))

    def plan(self, observations: Sequence[Observation], sampling: TrajectorySampling) -> list[Trajectory]:
        if not observations:
            return []
        poses = self.predict(observations)
        if sampling == self.sampling:
            return [Trajectory(p, sampling) for p in poses]
        return [Trajectory(resample_poses(p, self.sampling.times_s, sampling.times_s, hold_last=True), sampling)
                for p in poses]
