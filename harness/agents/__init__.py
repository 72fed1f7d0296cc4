"""Driving policies and their registry (name -> "module:object", imported on first use)."""

from __future__ import annotations

import importlib
from typing import Any

from harness.agents.base import Policy, PrivilegedPolicy, SensorNeeds
from harness.errors import ConfigError

AGENTS: dict[str, tuple[str, str]] = {
    "cv": ("harness.agents.constant_velocity:ConstantVelocityAgent", "constant velocity along the current velocity"),
    "mlp": ("harness.agents.ego_mlp:EgoMLPAgent", "ego-status MLP (velocity, acceleration, command); needs a checkpoint"),
    "human": ("harness.agents.human:HumanAgent", "human log replay (privileged: reads the logged future)"),
    "pdm_closed": ("harness.agents.pdm_closed:PDMClosedAgent",
                   "PDM-Closed rule-based planner (privileged: reads the map, route and objects)"),
    "tfv6": ("harness.agents.tfv6:TFv6Agent", "TransFuser v6 from `lead-bench train`; needs --ckpt (several: ensemble)"),
}


def build_agent(name: str, **kwargs: Any) -> Policy:
    """Instantiate a registered agent; an unknown name lists the known ones."""
    if name not in AGENTS:
        raise ConfigError(f"unknown agent '{name}'; known agents: {', '.join(sorted(AGENTS))}")
    module, _, obj = AGENTS[name][0].partition(":")
    cls = getattr(importlib.import_module(module), obj)
    agent = cls(**kwargs)
    if not isinstance(agent, Policy | PrivilegedPolicy):
        raise ConfigError(f"agent '{name}' does not implement the Policy protocol")
    return agent


__all__ = ["AGENTS", "Policy", "PrivilegedPolicy", "SensorNeeds", "build_agent"]
