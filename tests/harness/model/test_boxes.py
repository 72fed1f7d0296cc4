"""CenterNet decoding recovers the boxes that the training labels encode (round trip through
harness.training.labels, the encoder the training pipeline uses)."""

from __future__ import annotations

import numpy as np
import torch

from harness.model import BoxPrediction, TFv6Config
from harness.model.boxes import decode_boxes
from harness.training.labels import Grid, box_labels


def test_decode_inverts_the_label_encoding():
    cfg = TFv6Config.preset("navsim-r34")
    grid = Grid(cfg.bev_extent_m, cfg.bev_down_sample / cfg.bev_pixels_per_m)
    centre = np.array([[10.3, -4.6], [-20.7, 12.2], [3.1, 25.9]])
    size = np.array([[4.6, 1.9], [5.0, 2.1], [4.0, 1.8]])
    yaw = np.array([0.3, -2.5, 3.0])
    lab = box_labels(centre, size, yaw, np.array([5.0, 0.0, 2.0]), np.zeros(3, np.int64), grid, 1,
                     cfg.num_yaw_bins)
    heat = torch.from_numpy(lab.heatmap)[None].clamp(1e-4, 1 - 1e-4)
    yaw_logits = torch.nn.functional.one_hot(torch.from_numpy(lab.yaw_class), cfg.num_yaw_bins).permute(2, 0, 1)
    pred = BoxPrediction(heatmap_logits=torch.logit(heat), size_m=torch.from_numpy(lab.size_m)[None],
                         offset=torch.from_numpy(lab.offset)[None], yaw_logits=yaw_logits[None].float() * 10,
                         yaw_res=torch.from_numpy(lab.yaw_res)[None],
                         velocity_mps=torch.from_numpy(lab.velocity_mps)[None])
    boxes, keep = decode_boxes(pred, cfg)
    got = boxes[0][keep[0]].numpy()
    assert got.shape == (3, 8)
    order = np.lexsort((got[:, 1], got[:, 0]))
    want_order = np.lexsort((centre[:, 1], centre[:, 0]))
    got = got[order]
    np.testing.assert_allclose(got[:, :2], centre[want_order], atol=1e-4)
    np.testing.assert_allclose(got[:, 2:4], size[want_order] / 2, atol=1e-5)
    dyaw = np.angle(np.exp(1j * (got[:, 4] - yaw[want_order])))
    np.testing.assert_allclose(dyaw, 0.0, atol=1e-5)
    np.testing.assert_allclose(got[:, 5], np.array([5.0, 0.0, 2.0])[want_order], atol=1e-5)
    assert np.all(got[:, 6] == 0) and np.all(got[:, 7] > 0.99)
