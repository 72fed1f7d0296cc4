from adapters.navsim.scene_filter import NAVMINI_FILTER, NAVTEST_FILTER, SceneFilter, filter_scenes


def _log(n: int, prefix: str, no_route: tuple[int, ...] = ()) -> list[dict]:
    return [{"token": f"{prefix}{i:02d}", "roadblock_ids": [] if i in no_route else ["1"]} for i in range(n)]


def test_navtest_windows_every_frame_with_current_at_history_end():
    scenes = filter_scenes({"a": _log(20, "a")}, NAVTEST_FILTER)
    # 14-frame windows starting at 0..6; current frame = index 3 of each window.
    assert [s.token for s in scenes] == [f"a{i:02d}" for i in range(3, 10)]
    assert all(s.num_frames == 14 and s.current_index == s.start + 3 for s in scenes)


def test_navmini_non_overlapping_windows_drop_the_short_tail():
    scenes = filter_scenes({"a": _log(30, "a")}, NAVMINI_FILTER)
    assert [s.start for s in scenes] == [0, 14]


def test_route_filter_looks_only_at_the_current_frame():
    scenes = filter_scenes({"a": _log(16, "a", no_route=(3, 0))}, NAVTEST_FILTER)
    assert [s.token for s in scenes] == ["a04", "a05"]
    kept = filter_scenes({"a": _log(16, "a", no_route=(3,))}, SceneFilter(frame_interval=1, has_route=False))
    assert len(kept) == 3


def test_token_log_filters_and_max_scenes_in_sorted_log_order():
    logs = {"b": _log(15, "b"), "a": _log(15, "a")}
    assert [s.token for s in filter_scenes(logs, NAVTEST_FILTER)] == ["a03", "a04", "b03", "b04"]
    f = SceneFilter(frame_interval=1, tokens=("b04", "a03"))
    assert [s.token for s in filter_scenes(logs, f)] == ["a03", "b04"]
    f = SceneFilter(frame_interval=1, log_names=("b",), max_scenes=1)
    assert [s.token for s in filter_scenes(logs, f)] == ["b03"]
