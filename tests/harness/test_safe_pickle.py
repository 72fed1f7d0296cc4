import os
import pickle

import numpy as np
import pytest

from harness.errors import DataError
from harness.safe_pickle import dumps_compatible, load_restricted


def test_numpy_payload_round_trips_and_uses_numpy1_names(tmp_path):
    obj = [{"a": np.arange(4.0), "names": np.array(["car", "pedestrian"]), "s": np.float32(2.5)}]
    data = dumps_compatible(obj)
    assert b"numpy._core" not in data and b"numpy.core" in data
    p = tmp_path / "x.pkl"
    p.write_bytes(data)
    back = load_restricted(p)
    np.testing.assert_array_equal(back[0]["a"], obj[0]["a"])
    assert list(back[0]["names"]) == ["car", "pedestrian"]
    assert pickle.loads(data)[0]["s"] == np.float32(2.5)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_disallowed_globals_are_refused_with_the_path(tmp_path):
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DataError, match="refusing to unpickle.*system") as info:
        load_restricted(p)
    assert str(p) in str(info.value)


def test_truncated_and_missing_files_name_the_path(tmp_path):
    p = tmp_path / "t.pkl"
    p.write_bytes(dumps_compatible([{"a": np.zeros(100)}])[:40])
    with pytest.raises(DataError, match="corrupt or truncated") as info:
        load_restricted(p)
    assert str(p) in str(info.value)
    with pytest.raises(DataError, match="cannot read"):
        load_restricted(tmp_path / "missing.pkl")


def test_worker_results_load_numpy_project_classes_and_exceptions_only() -> None:
    import os
    import pickle

    import numpy as np

    from harness.errors import DataError as ProjectError
    from harness.safe_pickle import loads_worker_result
    from harness.trajectory import TrajectorySampling

    answer = (True, {"a": np.arange(3.0), "s": TrajectorySampling(num_poses=8, interval_s=0.5)},
              ValueError("bad token"), ProjectError("missing", path="x.pkl"))
    back = loads_worker_result(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    assert back[0] is True and np.array_equal(back[1]["a"], np.arange(3.0)) and back[1]["s"] == answer[1]["s"]
    assert isinstance(back[2], ValueError) and isinstance(back[3], ProjectError)

    class _Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(DataError, match="posix.system|os.system"):
        loads_worker_result(pickle.dumps(_Evil()))
    with pytest.raises(DataError, match="builtins.eval"):
        loads_worker_result(pickle.dumps(eval))
