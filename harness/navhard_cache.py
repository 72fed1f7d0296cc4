"""The two-stage (navhard) metric cache: 4 s scoring scenes with PDM-Closed's v2 reference, both stages.

Stage-one scenes come from the original logs (``<cache>/stage_one/<log>/<token>.npz``, as
:class:`harness.epdms_eval.EPDMSMetricCache` stores them, with the log's ``index.json``); stage-two scenes from
the synthetic scene pickles (``<cache>/stage_two/<token>.npz``, fingerprinted by the pickle's size and mtime).

:func:`cache_scenes` reads what is stored and builds the rest in chunks of ``BUILD_CHUNK`` tokens: scenes
built (stage-one object timelines batched over the chunk's tokens of each log), PDM-Closed planned for the
whole chunk at once (``harness.agents.pdm_closed_v2.plan_pdm_closed_v2_batch``: v1's batched proposal
generation; a failing chunk is planned scene by scene to name the failure), scenes written, the garbage
collector paused over the chunk (:func:`_gc_paused`). With ``workers > 1`` the chunks are spread over forked
processes (:func:`harness.navhard_workers.fork_chunks`) forked once the logs are indexed and the maps read;
the parent then reads the children's scenes back from the cache. Every stored file is byte for byte what
building the tokens one by one writes (``tests/adapters/navsim/test_navhard.py``).
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from adapters.navsim.log_format import Annotations
from adapters.navsim.navhard import (
    NavhardSplit,
    SyntheticScene,
    read_synthetic_scene,
    scoring_frames,
    synthetic_scene_dict,
)
from adapters.navsim.scoring_scenes import ScoringSceneCache, build_scoring_scene
from harness.agents.pdm_closed_v2 import plan_pdm_closed_v2_batch
from harness.atomic import atomic_write_bytes
from harness.epdms_eval import V2_HORIZON_S, EPDMSMetricCache, plan_pdm_closed_v2
from harness.errors import DataError, LeadBenchError
from harness.navhard_workers import fork_chunks
from harness.scoring_scene import SCORING_SCENE_VERSION, ScoringScene
from metrics.traffic_agents import LaneRails

if TYPE_CHECKING:
    from harness.navhard_eval import NavhardData

#: Tokens built together: one PDM-Closed batch (``EPDMSMetricCache.PLAN_CHUNK``) and one unit of work.
BUILD_CHUNK = 32
#: ``<cache>/stage_two/<AGENT_INPUTS>/<token>.<digest of the pickle's fingerprint>.pkl``: a synthetic scene's
#: history frames without boxes (what a policy's sample is made of), in the synthetic scene pickle format.
AGENT_INPUTS = "agent_inputs"
_NO_BOXES = Annotations(boxes=np.zeros((0, 7)), names=(), velocity_3d=np.zeros((0, 3)), instance_tokens=(),
                        track_tokens=())


class NavhardMetricCache:
    """Scoring scenes (4 s, PDM-Closed v2 filled in) for stage-one and stage-two tokens, built once and stored.

    Args:
        data: a ``harness.navhard_eval.NavhardData`` (data root, maps root, the split's paths).
        split: the two-stage split; cache_dir: the cache's root.
    """

    def __init__(self, data: NavhardData, split: NavhardSplit, cache_dir: Path) -> None:
        self.data = data
        self.reader = data.reader(split)
        self.stage_one = EPDMSMetricCache(ScoringSceneCache(cache_dir / "stage_one", self.reader, data.maps_root,
                                                            horizon_s=V2_HORIZON_S))
        self.stage_two_dir = cache_dir / "stage_two"
        self._rails: dict[str, LaneRails] = {}

    @property
    def scenes(self) -> ScoringSceneCache:
        return self.stage_one.scenes

    def synthetic(self, token: str) -> SyntheticScene:
        return read_synthetic_scene(self.data.synthetic_path(token))

    def agent_scene(self, token: str) -> SyntheticScene:
        """The synthetic scene as far as a policy sees it (history frames; no boxes, no future), read from its
        small record in the cache while the pickle is unchanged (the full pickle costs ~5-10 ms to parse), else
        from the pickle (and the record written). ``synthetic_sample`` of it equals that of the full scene."""
        fp = self._synthetic_fingerprint(token)
        path = self._agent_inputs_path(token, fp)
        if path.is_file():
            try:
                return read_synthetic_scene(path)
            except DataError:
                pass  # rewritten below
        scene = self.synthetic(token)
        self._write_agent_inputs(scene, fp)
        return scene

    def _agent_inputs_path(self, token: str, fingerprint: str) -> Path:
        digest = hashlib.blake2b(fingerprint.encode(), digest_size=8).hexdigest()
        return self.stage_two_dir / AGENT_INPUTS / f"{token}.{digest}.pkl"

    def _write_agent_inputs(self, scene: SyntheticScene, fingerprint: str) -> None:
        history = tuple(replace(f, annotations=_NO_BOXES) for f in scene.frames)
        record = synthetic_scene_dict(replace(scene, frames=history, extended_objects=(), extended_lights=(),
                                              extended_timestamps_us=()))
        # only builtins and numpy arrays (no nuPlan objects without a future): the C pickler, ~20x faster than
        # the submission writer's pure-Python one; read back with the restricted reader as any synthetic pickle
        atomic_write_bytes(self._agent_inputs_path(scene.token, fingerprint),
                           pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))

    def get(self, token: str) -> ScoringScene:
        """The complete scene of one token (read if stored, else built, planned and stored)."""
        scene = self.stored(token)
        if scene is not None:
            return scene
        built, errors = self._build_chunk([token])
        if token in errors:
            raise DataError(errors[token], token=token)
        return built[token]

    # --- stored scenes ------------------------------------------------------------------------------------

    def _synthetic_fingerprint(self, token: str) -> str:
        path = self.data.synthetic_path(token)
        if not path.is_file():
            raise DataError("no synthetic scene pickle", path=path, token=token)
        st = path.stat()
        return f"v{SCORING_SCENE_VERSION}|synthetic={st.st_size}:{st.st_mtime_ns}|horizon={V2_HORIZON_S:g}"

    def path_of(self, token: str) -> Path:
        """Where the scene of ``token`` is stored (raises ``DataError`` for an unknown stage-one token)."""
        if len(token) == 17:
            return self.stage_two_dir / f"{token}.npz"
        window = self.reader.windows().get(token)
        if window is None:
            self.reader.scene_frames(token)  # raises the reader's error for the unknown token
        return self.scenes.path_of(window.log_name, token)

    def stored(self, token: str) -> ScoringScene | None:
        """The stored, complete (PDM-Closed planned) scene of ``token`` if its inputs are unchanged, else None.

        Raises:
            DataError: an unknown stage-one token or a missing synthetic scene pickle.
        """
        if len(token) != 17:
            scene = self.scenes.stored(token)
            return scene if scene is not None and scene.pdm_closed_states.shape[0] > 0 else None
        fp = self._synthetic_fingerprint(token)
        out = self.path_of(token)
        if out.is_file():
            try:
                cached = ScoringScene.load(out)
                if cached.fingerprint == fp:
                    return cached
            except DataError:
                pass
        return None

    # --- building -----------------------------------------------------------------------------------------

    def _build_one(self, token: str) -> ScoringScene:
        """The scene of ``token`` without PDM-Closed (a stage-one scene already stored without it is reused)."""
        if len(token) != 17:
            partial = self.scenes.stored(token)
            return partial if partial is not None else self.scenes.build(token)
        fp = self._synthetic_fingerprint(token)
        scene = self.synthetic(token)
        self._write_agent_inputs(scene, fp)  # planning then reads this instead of the pickle
        frames, cur = scoring_frames(scene)
        road_map, query = self.scenes.map_for(scene.map_name)
        return build_scoring_scene(frames, cur, road_map, query, horizon_s=V2_HORIZON_S, fingerprint=fp)

    def _build_chunk(self, tokens: Sequence[str]) -> tuple[dict[str, ScoringScene], dict[str, str]]:
        """Build, plan (one PDM-Closed batch) and store ``tokens``; their scenes and failures by token. The
        cyclic garbage collector is paused meanwhile (:func:`_gc_paused`)."""
        with _gc_paused():
            return self._build_chunk_now(tokens)

    def _build_chunk_now(self, tokens: Sequence[str]) -> tuple[dict[str, ScoringScene], dict[str, str]]:
        errors: dict[str, str] = {}
        self.scenes.expect([t for t in tokens if len(t) != 17])  # object timelines batched over these
        todo: list[ScoringScene] = []
        for t in tokens:
            try:
                todo.append(self._build_one(t))
            except (LeadBenchError, ValueError) as exc:
                errors[t] = f"metric cache: {type(exc).__name__}: {exc}"
        try:
            planned = plan_pdm_closed_v2_batch(todo)
        except (LeadBenchError, ValueError):
            planned = None  # plan one by one to name the failing scene
        built: dict[str, ScoringScene] = {}
        stage_one: list[ScoringScene] = []
        for i, scene in enumerate(todo):
            try:
                states, times = planned[i] if planned is not None else plan_pdm_closed_v2(scene)
            except (LeadBenchError, ValueError) as exc:
                errors[scene.token] = f"metric cache: {type(exc).__name__}: {exc}"
                continue
            done = replace(scene, pdm_closed_states=states, pdm_closed_times_s=times)
            if len(done.token) == 17:
                done.save(self.path_of(done.token))
            else:
                stage_one.append(done)
            built[done.token] = done
        self.scenes.put(stage_one)  # written, and recorded in their logs' indexes
        return built, errors

    def _read_maps(self, tokens: Sequence[str]) -> None:
        """Read the maps of the stage-one logs (synthetic scenes continue them) before forking: children then
        share them instead of each reading its own."""
        windows = self.reader.windows()
        logs = {windows[t].log_name for t in tokens if t in windows}
        for name in sorted(logs):
            try:
                frames = self.reader.log_frames(name)
                if frames:
                    self.scenes.map_for(frames[0].map_location)
            except LeadBenchError:
                continue  # the process building those tokens reports the error

    def rails(self, location: str) -> LaneRails:
        if location not in self._rails:
            self._rails[location] = LaneRails.from_road_map(self.scenes.map_for(location)[0])
        return self._rails[location]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a chunk's build, back on (if it was) after it.

    A chunk allocates many objects that live until it is written (the synthetic pickles' contents, ~220 kB
    each, and the planner's arrays), so the collector's generational passes kept rescanning them: ~30 % of the
    build's CPU on the bench world. Nothing is freed later than the chunk's end (reference counting frees the
    rest as usual; the chunk's few cycles go at the next collection)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def cache_scenes(cache: NavhardMetricCache, tokens: Sequence[str], *, workers: int = 1,
                 on_done: Callable[[int], None] | None = None) -> tuple[dict[str, ScoringScene], dict[str, str]]:
    """Scoring scenes of ``tokens`` (stored ones read, the rest built in chunks, over ``workers`` forked
    processes); failures by token (``"metric cache: ..."``). ``on_done(n)``: ``n`` more tokens are ready
    (reported by this process: as it reads, and as its own chunks and then the children's finish)."""
    scenes: dict[str, ScoringScene] = {}
    errors: dict[str, str] = {}
    todo: list[str] = []
    for t in dict.fromkeys(tokens):
        try:
            got = cache.stored(t)
        except (LeadBenchError, ValueError) as exc:
            errors[t] = f"metric cache: {type(exc).__name__}: {exc}"
            continue
        if got is None:
            todo.append(t)
        else:
            scenes[t] = got
    if on_done and scenes:
        on_done(len(scenes))
    chunks = [todo[lo : lo + BUILD_CHUNK] for lo in range(0, len(todo), BUILD_CHUNK)]
    if workers > 1 and len(chunks) > 1:
        cache._read_maps(todo)
        pid = os.getpid()

        def build(i: int) -> tuple[int, list[str], dict[str, str]]:
            built, err = cache._build_chunk(chunks[i])
            if os.getpid() == pid:  # this process keeps its scenes; children's are re-read
                scenes.update(built)
                if on_done:
                    on_done(len(chunks[i]))
            return os.getpid(), list(built), err

        for owner, built_tokens, err in fork_chunks(build, len(chunks), workers):
            errors.update(err)
            if owner == pid:
                continue
            for t in built_tokens:
                try:
                    scenes[t] = ScoringScene.load(cache.path_of(t))
                except DataError as exc:
                    errors[t] = f"metric cache: {type(exc).__name__}: {exc}"
            if on_done:
                on_done(len(built_tokens) + len(err))
    else:
        for chunk in chunks:
            built, err = cache._build_chunk(chunk)
            scenes.update(built)
            errors.update(err)
            if on_done:
                on_done(len(chunk))
    return {t: scenes[t] for t in dict.fromkeys(tokens) if t in scenes}, errors
