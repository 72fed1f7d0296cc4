"""Typed training configuration: frozen dataclasses, a YAML file and ``--set key=value`` overrides.

Keys are dotted paths into :class:`TrainConfig` (``batch_size``, ``optim.lr``, ``data.sources``,
``model.token_dim``, ``augment.view_prob``, ...). An unknown key is an error that names the key and lists the
known ones at that level (LEAD silently ignores unknown keys, spec §7.23). Values are converted to the field's
type (``data.sources=navsim,carla`` gives a tuple); a value that does not convert is an error naming the key.

Precedence: preset < YAML file < ``--set`` (applied in order). The resolved configuration is written next to
every checkpoint and read back by the agent, so training and inference always agree.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.model.io import PRESETS as MODEL_PRESETS
from harness.model.io import TFv6Config
from harness.training.inputs import AugmentSpec, InputSpec
from harness.training.views import RIGS

SOURCES = ("carla", "navsim", "waymo")
SIM_SOURCES = ("carla",)


@dataclass(frozen=True)
class DataConfig:
    """Training sources, their data roots and splits, rigs and how batches mix them.

    ``*_root = None`` means the embedded world (NAVSIM layout; its ``waymo/`` folder; a CARLA copy written on
    demand). ``ratios`` are per-batch weights aligned with ``sources`` (empty: equal shares). ``sim_to_real``
    replaces them by LEAD's annealed curriculum (sim share 40/64 in epoch 0, 32 from epoch 1, 24 from 3, 16
    from 7, 8 from 15, 0 from 31; the real sources split the rest equally).
    """

    sources: tuple[str, ...] = ("navsim",)
    ratios: tuple[float, ...] = ()
    sim_to_real: bool = False
    navsim_root: str | None = None
    navsim_split: str = "train"
    waymo_root: str | None = None
    waymo_split: str = "train"
    carla_root: str | None = None
    carla_split: str = "train"
    rig_navsim: str = "navsim_4cam"
    rig_waymo: str = "waymo_front_3cam"
    rig_carla: str = "navsim_4cam"
    num_workers: int = 0
    cache_images: bool = True

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("data.sources is empty; choose from " + ", ".join(SOURCES))
        for s in self.sources:
            if s not in SOURCES:
                raise ConfigError(f"data.sources: unknown source {s!r}; known: {', '.join(SOURCES)}")
        if len(set(self.sources)) != len(self.sources):
            raise ConfigError(f"data.sources lists a source twice: {self.sources}")
        if self.ratios and (len(self.ratios) != len(self.sources) or min(self.ratios) < 0 or sum(self.ratios) <= 0):
            raise ConfigError(f"data.ratios {self.ratios} must be one non-negative weight per source {self.sources}")
        if self.sim_to_real and not (set(self.sources) & set(SIM_SOURCES) and set(self.sources) - set(SIM_SOURCES)):
            raise ConfigError("data.sim_to_real needs a simulated source (carla) and at least one real source")
        for s in SOURCES:
            if getattr(self, f"rig_{s}") not in RIGS:
                raise ConfigError(f"data.rig_{s}: unknown rig {getattr(self, f'rig_{s}')!r}; known: {sorted(RIGS)}")
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with cosine warm restarts (spec §2.3: lr 3e-4, weight decay 0.01 on all parameters, amsgrad,
    T_0 = one epoch, T_mult = 2) or plain cosine (Waymo) or a constant rate; optional gradient clipping."""

    lr: float = 3e-4
    weight_decay: float = 0.01
    amsgrad: bool = True
    schedule: str = "restarts"
    t_mult: int = 2
    min_lr: float = 0.0
    grad_clip_norm: float = 0.0  # 0: off (LEAD does not clip)

    def __post_init__(self) -> None:
        if self.schedule not in ("restarts", "cosine", "constant"):
            raise ConfigError(f"optim.schedule must be restarts | cosine | constant, got {self.schedule!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip_norm < 0 or self.t_mult < 1:
            raise ConfigError("optim: lr must be > 0, weight_decay and grad_clip_norm >= 0, t_mult >= 1")


@dataclass(frozen=True)
class ValConfig:
    """Validation on held-out world splits with the benchmarks' metrics (PDMS on NAVSIM, RFS on Waymo)."""

    every_steps: int = 0  # 0: only at the end
    navsim: bool = True
    navsim_split: str = "test"
    waymo: bool = True
    waymo_split: str = "val"
    batch_size: int = 32


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; frozen, serialisable (:meth:`to_dict`) and checked."""

    preset: str = "tiny"
    model: TFv6Config = field(default_factory=lambda: MODEL_PRESETS["tiny"])
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    val: ValConfig = field(default_factory=ValConfig)
    batch_size: int = 64  # global, split evenly over processes
    max_steps: int = 1000
    steps_per_epoch: int = 0  # 0: ceil(largest source / batch_size)
    seed: int = 0
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    channels_last: bool = True
    compile: str = "auto"  # auto | on | off: torch.compile of forward + losses (auto: on for a CUDA device)
    cuda_graph: str = "auto"  # auto | on | off: CUDA-graph replay of each step (auto: on for one CUDA process)
    waypoint_interval_s: float = 0.5
    past_interval_s: float = 0.5
    loss_weights: tuple[tuple[str, float], ...] = ()  # (loss key, raw weight); unlisted keys weigh 1 (LEAD)
    init_waypoint_bias: bool = True  # start the planner's delta head at the data's mean displacement per step
    headings_from: str = "model"  # what the agent outputs as headings: the heading head, or the waypoints' path
    log_every: int = 10
    checkpoint_every: int = 0  # 0: only at the end
    keep_checkpoints: int = 3

    def __post_init__(self) -> None:
        for name in ("compile", "cuda_graph"):
            object.__setattr__(self, name, _switch(getattr(self, name), name))
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"precision must be auto | bf16 | fp32, got {self.precision!r}")
        if self.batch_size < 1 or self.max_steps < 1 or self.steps_per_epoch < 0:
            raise ConfigError("batch_size and max_steps must be >= 1, steps_per_epoch >= 0")
        if self.waypoint_interval_s <= 0 or self.past_interval_s <= 0:
            raise ConfigError("waypoint_interval_s and past_interval_s must be > 0")
        if self.headings_from not in ("model", "positions"):
            raise ConfigError(f"headings_from must be model | positions, got {self.headings_from!r}")
        if self.log_every < 1 or self.checkpoint_every < 0 or self.keep_checkpoints < 1:
            raise ConfigError("log_every and keep_checkpoints must be >= 1, checkpoint_every >= 0")

    def input_spec(self) -> InputSpec:
        d = self.data
        return InputSpec(self.model, {"navsim": d.rig_navsim, "waymo": d.rig_waymo, "carla": d.rig_carla},
                         self.waypoint_interval_s, self.past_interval_s, self.carla_leaderboard_mode)

    @property
    def carla_leaderboard_mode(self) -> bool:
        """LEAD's ``TrainingConfig.carla_leaderboard_mode``: a CARLA leaderboard target (CARLA data alone on a
        CARLA leaderboard rig, e.g. the ``carla-r34`` preset) and no mixed-data training. Otherwise CARLA labels
        get LEAD's sim-to-real relabels (:class:`harness.training.inputs.InputSpec`)."""
        d = self.data
        return tuple(d.sources) == ("carla",) and d.rig_carla.startswith("carla_lb")

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (an unknown key is an error)."""
        return _apply_mapping(TrainConfig(), d, "")


def _switch(value: Any, name: str) -> str:
    """``auto`` | ``on`` | ``off``; booleans (``true``/``false``, as older configs wrote ``compile``) map to
    on / off."""
    s = str(value).strip().lower()
    s = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(s, s)
    if s not in ("auto", "on", "off"):
        raise ConfigError(f"{name} must be auto | on | off, got {value!r}")
    return s


def resolve_switch(value: str, cuda: bool, world_size: int = 1, needs_single: bool = False) -> bool:
    """Whether an ``auto | on | off`` switch is on for this device (``auto``: on CUDA, and for
    ``needs_single`` switches only with one process)."""
    if value == "auto":
        return cuda and (world_size == 1 or not needs_single)
    return value == "on"


#: Training presets: a model preset plus the data/optimiser choices that go with it.
TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # CPU minutes on the embedded world: tiny backbones, the 3 front cameras at 64 x 384, 10 waypoints at 2 Hz
    # (NAVSIM's 8 and Waymo's 5 s both covered), past poses, NAVSIM CenterNet head.
    "tiny": {"model": {"image_width": 384, "num_waypoints": 10}, "data": {"rig_navsim": "navsim_3cam"},
             "batch_size": 16, "optim": {"lr": 1e-3, "schedule": "cosine"}},
    # the same with CARLA perception heads (BEV semantics 13, boxes 8, image semantics 10, depth) added
    "tiny-carla": {"model": {"image_width": 384, "num_waypoints": 10,
                             "bev_semantic_classes": [["navsim", 7], ["carla", 13]],
                             "box_classes": [["navsim", 1], ["carla", 8]], "image_semantic_classes": 10,
                             "predict_depth": True},
                   "data": {"rig_navsim": "navsim_3cam", "rig_carla": "navsim_3cam", "sources": ["navsim", "carla"]},
                   "batch_size": 16, "optim": {"lr": 1e-3, "schedule": "cosine"}},
    "navsim-r34": {},
    "carla-r34": {"data": {"sources": ["carla"], "rig_carla": "carla_lb_3cam"}, "waypoint_interval_s": 0.25},
    "waymo-r34": {"data": {"sources": ["waymo"]}, "optim": {"schedule": "cosine"}},
}


def preset_config(name: str) -> TrainConfig:
    """The training configuration of a preset (model preset of the same name, or ``tiny`` for ``tiny-*``)."""
    if name not in TRAIN_PRESETS:
        raise ConfigError(f"unknown training preset {name!r}; known: {', '.join(TRAIN_PRESETS)}")
    model_name = name if name in MODEL_PRESETS else "tiny"
    base = TrainConfig(preset=name, model=MODEL_PRESETS[model_name])
    return _apply_mapping(base, TRAIN_PRESETS[name], "")


def load_config(preset: str = "tiny", file: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Preset, then the YAML ``file``, then ``key=value`` overrides."""
    cfg = preset_config(preset)
    if file is not None:
        path = Path(file)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        if "preset" in data and data["preset"] != preset:
            cfg = preset_config(str(data["preset"]))
        cfg = _apply_mapping(cfg, {k: v for k, v in data.items() if k != "preset"}, "")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        cfg = set_key(cfg, key.strip(), value)
    return cfg


def set_key(cfg: Any, dotted: str, raw: Any, full: str | None = None) -> Any:
    """``cfg`` with the dotted key replaced by ``raw`` converted to the field's type."""
    full = full or dotted
    head, _, rest = dotted.partition(".")
    names = {f.name for f in fields(cfg)}
    if head not in names:
        raise ConfigError(f"unknown config key {full!r}; known keys here: {', '.join(sorted(names))}")
    cur = getattr(cfg, head)
    if rest:
        if not dataclasses.is_dataclass(cur):
            raise ConfigError(f"config key {full!r}: {head!r} is a value, not a section")
        new = set_key(cur, rest, raw, full)
    else:
        new = _convert(raw, typing.get_type_hints(type(cfg))[head], full, cur)
    try:
        return replace(cfg, **{head: new})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"config key {full!r}: {exc}") from exc


def _apply_mapping(cfg: Any, d: Mapping[str, Any], prefix: str) -> Any:
    for k, v in d.items():
        key = f"{prefix}{k}"
        cur = getattr(cfg, k, None)
        if isinstance(v, Mapping) and dataclasses.is_dataclass(cur):
            names = {f.name for f in fields(cfg)}
            if k not in names:
                raise ConfigError(f"unknown config key {key!r}; known keys here: {', '.join(sorted(names))}")
            try:
                cfg = replace(cfg, **{k: _apply_mapping(cur, v, key + ".")})
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"config section {key!r}: {exc}") from exc
        else:
            cfg = set_key(cfg, k, v) if not prefix else _set_here(cfg, k, v, key)
    return cfg


def _set_here(cfg: Any, k: str, v: Any, full: str) -> Any:
    return set_key(cfg, k, v, full)


def _convert(raw: Any, hint: Any, key: str, current: Any) -> Any:
    """Convert a YAML value or a ``--set`` string to the annotated type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    try:
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
            if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null", "")):
                return None
            return _convert(raw, next(a for a in args if a is not type(None)), key, current)
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if hint is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(f"not an integer: {raw!r}")
            return int(raw)
        if hint is float:
            return float(raw)
        if hint is str:
            return str(raw)
        if origin is tuple:
            items = raw
            if isinstance(raw, str):
                parsed = yaml.safe_load(raw) if raw.strip().startswith("[") else raw.split(",")
                items = [x.strip() if isinstance(x, str) else x for x in parsed if not (isinstance(x, str) and
                                                                                       not x.strip())]
            if not isinstance(items, list | tuple):
                raise ValueError(f"not a list: {raw!r}")
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(x, args[0], key, None) for x in items)
            if len(args) != len(items):
                raise ValueError(f"expected {len(args)} values, got {len(items)}")
            return tuple(_convert(x, a, key, None) for a, x in zip(args, items))
    except (ValueError, TypeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config key {key!r}: cannot use {raw!r} as {hint}: {exc}") from exc
    raise ConfigError(f"config key {key!r}: unsupported type {hint}")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, tuple | list):
        return [_to_plain(x) for x in obj]
    return obj


def dump_yaml(cfg: TrainConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
