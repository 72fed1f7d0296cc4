"""TransFuser v6 (TFv6): typed interface in :mod:`harness.model.io`, network in :mod:`harness.model.tfv6`."""

from harness.model.io import (
    BEVSemanticTarget,
    BoxPrediction,
    BoxTarget,
    DepthTarget,
    ImageSemanticTarget,
    LossWeights,
    ModelInputs,
    ModelTargets,
    TFv6Config,
    TFv6Prediction,
)

__all__ = [
    "BEVSemanticTarget", "BoxPrediction", "BoxTarget", "DepthTarget", "ImageSemanticTarget", "LossWeights",
    "ModelInputs", "ModelTargets", "TFv6Config", "TFv6Prediction",
]
