"""Where a WOD-E2E split's shards and side files lie in a data root, and how the side files read.

The bucket (``gs://waymo_open_dataset_end_to_end_camera_v_1_0_0/``, specs/waymo_e2e.md §1.1) is flat::

    training_202504031202_202504151040.tfrecord-00000-of-00263
    val_202504211843.tfrecord-00000-of-00093
    test_202504211836-202504220845.tfrecord-00000-of-00266
    val_sequence_name_to_scenario_cluster.json      {sequence_id: cluster} for the val sequences
    test_sequence_frames_for_submission.json        {sequence_id: frame_index}, one frame per test sequence

so a split's shards are the files whose names start with the split's prefix and contain ``.tfrecord``. A
sub-folder named after the split (``train/``, ``val/``, ``test/``) holding ``*.tfrecord*`` files works too,
and an explicit glob (``--files``) overrides both. The tutorial's generic names (``training.tfrecord*``,
``validation.tfrecord*``, ``test.tfrecord*``) are accepted as prefixes as well.
"""

from __future__ import annotations

import glob as _glob
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adapters.waymo.labels import frame_name
from harness.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
#: File-name prefixes of each split's shards: the bucket's first, then the tutorial's generic names.
SHARD_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "train": ("training_", "training."),
    "val": ("val_", "validation_", "validation."),
    "test": ("test_", "test."),
}
CLUSTERS_FILE = "val_sequence_name_to_scenario_cluster.json"
TEST_MANIFEST_FILE = "test_sequence_frames_for_submission.json"


def _is_shard_name(name: str) -> bool:
    # Hidden files include the TFRecord writer's temporary files (".<name>.<pid>.<hex>.tmp").
    return ".tfrecord" in name and not name.startswith(".") and not name.endswith(".tmp")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown Waymo split {split!r}; expected one of {', '.join(SPLITS)}")


def find_shards(data_root: Path, split: str, files: str | None = None) -> list[Path]:
    """The shard files of ``split``, sorted by name.

    Args:
        data_root: the data root (the bucket's copy).
        split: ``train``, ``val`` or ``test``.
        files: a glob (absolute, or relative to ``data_root``; ``**`` allowed) that replaces the discovery.

    Raises:
        ConfigError: unknown split, a missing data root, nothing matched (the message lists what was looked
            for), or shards both flat in the root and in the split's sub-folder (which would be read twice).
    """
    _check_split(split)
    root = Path(data_root)
    if files is not None:
        pattern = files if Path(files).is_absolute() else str(root / files)
        found = sorted(Path(p) for p in _glob.glob(pattern, recursive=True) if Path(p).is_file())
        if not found:
            raise ConfigError(f"--files {files!r} matched no file (pattern {pattern})")
        return found
    if not root.is_dir():
        raise ConfigError(f"Waymo data root {root} is not a directory")
    prefixes = SHARD_PREFIXES[split]
    flat = sorted(p for p in root.iterdir()
                  if p.is_file() and _is_shard_name(p.name) and p.name.startswith(prefixes))
    sub = root / split
    nested = sorted(p for p in sub.iterdir() if p.is_file() and _is_shard_name(p.name)) if sub.is_dir() else []
    if flat and nested:
        raise ConfigError(
            f"split {split!r} has shards both in {root} ({flat[0].name}, …) and in {sub} ({nested[0].name}, …); "
            "keep one layout or choose with --files"
        )
    if not (flat or nested):
        looked = " or ".join(f"{p}*.tfrecord*" for p in prefixes)
        raise ConfigError(
            f"no {split} shards in {root}: looked for files named {looked} in it and for *.tfrecord* files in "
            f"{sub}/ (use --files GLOB for another layout)"
        )
    return flat or nested


def _read_json(path: Path, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read the {what} ({exc})", path=path) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"the {what} is not valid JSON ({exc})", path=path) from exc


def read_clusters(path: Path) -> dict[str, str]:
    """``{sequence_id: cluster name}`` from a cluster JSON, cluster names exactly as written.

    Accepts ``{seq: "Cluster"}`` and ``{seq: {"scenario_cluster": "Cluster", …}}``.

    Raises:
        DataError: not a JSON object, or an entry of neither form (named).
    """
    raw = _read_json(path, "scenario-cluster file")
    if not isinstance(raw, dict):
        raise DataError(f"the scenario-cluster file must be a JSON object {{sequence: cluster}}, got "
                        f"{type(raw).__name__}", path=path)
    out: dict[str, str] = {}
    for seq, value in raw.items():
        if isinstance(value, dict):
            value = value.get("scenario_cluster")
        if not isinstance(value, str) or not value:
            raise DataError(f"sequence {seq!r}: expected a cluster name or {{\"scenario_cluster\": name}}, got "
                            f"{raw[seq]!r}", path=path)
        out[str(seq)] = value
    return out


def read_test_manifest(path: Path) -> dict[str, int]:
    """``{sequence_id: frame_index}`` from ``test_sequence_frames_for_submission.json``.

    Raises:
        DataError: not a JSON object, or a frame index that is not a non-negative integer (an integer
            string such as ``"085"`` is accepted; the server formats indices as integers).
    """
    raw = _read_json(path, "test submission manifest")
    if not isinstance(raw, dict):
        raise DataError(f"the test manifest must be a JSON object {{sequence: frame_index}}, got "
                        f"{type(raw).__name__}", path=path)
    out: dict[str, int] = {}
    for seq, value in raw.items():
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, str) and value.isdigit() and value.isascii())
        ):
            raise DataError(f"sequence {seq!r}: frame index must be a non-negative integer, got {value!r}",
                            path=path)
        idx = int(value)
        if idx < 0:
            raise DataError(f"sequence {seq!r}: frame index must be >= 0, got {idx}", path=path)
        out[str(seq)] = idx
    return out


def required_frame_names(manifest: Mapping[str, int]) -> list[str]:
    """The frame names a test submission must cover, in manifest order: ``f"{seq}-{idx:03d}"``."""
    return [frame_name(seq, idx) for seq, idx in manifest.items()]


def default_clusters_path(data_root: Path) -> Path:
    """Where the val cluster file lies in a data root (the bucket keeps it at the top level)."""
    return Path(data_root) / CLUSTERS_FILE


def default_test_manifest_path(data_root: Path) -> Path:
    """Where the test manifest lies in a data root (the bucket keeps it at the top level)."""
    return Path(data_root) / TEST_MANIFEST_FILE
