"""Driving policies and their registry (name -> "module:object", imported on first use)."""

from __future__ import annotations

import importlib
from typing import Any

from harness.agents.base import Policy, SensorNeeds
from harness.errors import ConfigError

AGENTS: dict[str, tuple[str, str]] = {
    "cv": ("harness.agents.constant_velocity:ConstantVelocityAgent", "constant velocity along the current velocity"),
}


def build_agent(name: str, **kwargs: Any) -> Policy:
    """Instantiate a registered agent; an unknown name lists the known ones."""
    if name not in AGENTS:
        raise ConfigError(f"unknown agent '{name}'; known agents: {', '.join(sorted(AGENTS))}")
    module, _, obj = AGENTS[name][0].partition(":")
    cls = getattr(importlib.import_module(module), obj)
    agent = cls(**kwargs)
    if not isinstance(agent, Policy):
        raise ConfigError(f"agent '{name}' does not implement the Policy protocol")
    return agent


__all__ = ["AGENTS", "Policy", "SensorNeeds", "build_agent"]
