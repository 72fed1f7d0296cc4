"""Two CPU processes with torch.distributed (gloo) train as one DDP model: rank 0 writes the model and the
checkpoints, which hold both ranks' RNG states (each rank draws its own data shard and dropout)."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from harness.training.config import load_config
from harness.training.sources import SourceRoots, open_sources
from harness.training.trainer import DistInfo, train

SMALL = ["model.image_width=192", "model.bev_extent_m=[-8,8,-8,8]", "model.token_dim=32", "model.planner_layers=1",
         "model.planner_ffn_dim=64", "model.planner_heads=2", "model.bev_feature_channels=16",
         "data.rig_navsim=navsim_3cam", "batch_size=4", "max_steps=2", "val.navsim=false", "val.waymo=false"]


def _worker(rank: int, port: int, root: str, out: str) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cfg = load_config("tiny", overrides=SMALL)
    train(cfg, Path(out), open_sources(cfg, SourceRoots(navsim=Path(root))), dist=DistInfo(rank, 2, rank),
          device="cpu")
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_train_one_model(small_world_root, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, str(small_world_root), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    ck = torch.load(tmp_path / "model.pt", weights_only=True)
    assert ck["step"] == 2
    resume = torch.load(tmp_path / "checkpoints" / "step_0000002.pt", weights_only=True)
    assert isinstance(resume["rng"]["torch"], list) and len(resume["rng"]["torch"]) == 2
    assert not torch.equal(resume["rng"]["torch"][0], resume["rng"]["torch"][1])
