"""TransFuser v6 (TFv6): typed interface in :mod:`harness.model.io`, network in :mod:`harness.model.tfv6`,
losses in :mod:`harness.model.losses`, timm-named backbones in :mod:`harness.model.backbones`."""

from harness.model.io import (
    BEVSemanticTarget,
    BoxPrediction,
    BoxTarget,
    DepthTarget,
    ImageSemanticTarget,
    LossWeights,
    ModelInputs,
    ModelTargets,
    RadarTarget,
    TFv6Config,
    TFv6Prediction,
)
from harness.model.losses import tfv6_losses
from harness.model.tfv6 import TFv6

__all__ = [
    "BEVSemanticTarget", "BoxPrediction", "BoxTarget", "DepthTarget", "ImageSemanticTarget", "LossWeights",
    "ModelInputs", "ModelTargets", "RadarTarget", "TFv6", "TFv6Config", "TFv6Prediction", "tfv6_losses",
]
