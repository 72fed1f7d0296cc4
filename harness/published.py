"""Published baseline numbers from the specs, as reference rows for `lead-bench compare`.

Values are in the units of lead-bench's per-token rows (NAVSIM sub-scores and PDMS as fractions 0-1; Waymo RFS
0-10 and ADE in metres; CARLA driving score 0-100), so they sit in the same columns as a run's means. They are
not lead-bench measurements: each row names its source, its scorer version, its split and how sure the spec is
of it. No per-token data exists for them, so they get no interval, no paired delta and no p-value.

Sources: ``shared/specs/navsim.md`` §11.3 (NAVSIM paper table, navtest), ``waymo_e2e.md`` §5 (hidden test
leaderboard), ``lead_tfv6.md`` §6 (LEAD README tables for Bench2Drive and Longest6 v2, LEAD's sim-to-real targets).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class PublishedBaseline:
    """One published result.

    Attributes:
        benchmark: ``navsim`` | ``waymo`` | ``carla`` (a run summary's ``benchmark``).
        split: the split or route set it was measured on.
        method: the method's name as published.
        metrics: lead-bench metric column -> value, in the rows' units.
        scorer: the scorer version the number comes from.
        source: where the number is published (and the spec section that records it).
        status: how sure the spec is (``published``, ``third-party report, unverified``, ...).
    """

    benchmark: str
    split: str
    method: str
    metrics: Mapping[str, float]
    scorer: str
    source: str
    status: str = "published"
    privileged: bool = field(default=False)

    def __post_init__(self) -> None:
        if not self.metrics:
            raise ValueError(f"published baseline {self.method!r} has no metrics")
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    @property
    def label(self) -> str:
        """The row name in comparison tables: clearly marked as published, with split and scorer."""
        extra = ", privileged" if self.privileged else ""
        flag = "" if self.status == "published" else f"; {self.status}"
        return f"[published] {self.method} ({self.split}; {self.scorer}{extra}{flag})"


_NAVSIM_V1 = "NAVSIM v1 PDMS, paper table"
_NAVSIM_SRC = "NAVSIM paper (specs/navsim.md §11.3)"


def _navsim(method: str, nc: float, dac: float, ttc: float, c: float, ep: float, pdms: float, **kw: object
            ) -> PublishedBaseline:
    metrics = {"no_at_fault_collisions": nc / 100, "drivable_area_compliance": dac / 100,
               "time_to_collision_within_bound": ttc / 100, "comfort": c / 100, "ego_progress": ep / 100,
               "score": pdms / 100}
    return PublishedBaseline("navsim", "navtest", method, metrics, _NAVSIM_V1, _NAVSIM_SRC, **kw)  # type: ignore[arg-type]


_WAYMO_SCORER = "WOD-E2E challenge server, RFS mean of cluster means"
_B2D_SCORER = "Bench2Drive (CARLA leaderboard 2.0 rules, Bench2Drive fork)"
_LB2_SCORER = "CARLA leaderboard 2.0"
_LEAD_README = "autonomousvision/lead README (specs/lead_tfv6.md §6.2)"

PUBLISHED_BASELINES: tuple[PublishedBaseline, ...] = (
    _navsim("Constant Velocity", 68.0, 57.8, 50.0, 100, 19.4, 20.6),
    _navsim("Ego Status MLP", 93.0, 77.3, 83.6, 100, 62.8, 65.6),
    _navsim("LTF", 97.4, 92.8, 92.4, 100, 79.0, 83.8),
    _navsim("TransFuser", 97.7, 92.8, 92.8, 100, 79.2, 84.0),
    _navsim("Human", 100, 100, 100, 99.9, 87.5, 94.8, privileged=True),
    _navsim("PDM-Closed", 94.6, 99.8, 86.9, 99.9, 89.9, 89.1, privileged=True,
            status="third-party table, column order normalised"),
    PublishedBaseline("navsim", "navtest", "LEAD TFv6", {"score": 0.864}, _NAVSIM_V1,
                      "LEAD (specs/lead_tfv6.md §6.1)", status="project target figure, unconfirmed"),
    PublishedBaseline("waymo", "test (hidden, 1,505 frames)", "LEAD TFv6", {"rfs": 7.51}, _WAYMO_SCORER,
                      "LEAD paper arXiv 2512.20563 (specs/waymo_e2e.md §5)"),
    PublishedBaseline("waymo", "test (hidden, 1,505 frames)", "Poutine", {"rfs": 7.986, "ade_3s": 1.21},
                      _WAYMO_SCORER, "Poutine paper arXiv 2506.11234 (specs/waymo_e2e.md §5)"),
    PublishedBaseline("waymo", "test (hidden, 1,505 frames)", "RAP", {"rfs": 8.043, "ade_3s": 1.17, "ade_5s": 2.65},
                      _WAYMO_SCORER, "specs/waymo_e2e.md §5", status="third-party report, unverified"),
    PublishedBaseline("waymo", "test (hidden, 1,505 frames)", "OpenEMMA", {"rfs": 5.158}, _WAYMO_SCORER,
                      "specs/waymo_e2e.md §5", status="third-party report, unverified"),
    PublishedBaseline("carla", "Bench2Drive 220", "TFv6 (RegNetY-032)", {"driving_score": 95.28}, _B2D_SCORER,
                      _LEAD_README),
    PublishedBaseline("carla", "Bench2Drive 220", "TF++ (TFv5)", {"driving_score": 84.21}, _B2D_SCORER, _LEAD_README),
    PublishedBaseline("carla", "Bench2Drive 220", "SimLingo", {"driving_score": 85.07}, _B2D_SCORER, _LEAD_README),
    PublishedBaseline("carla", "Bench2Drive 220", "DiffRefiner", {"driving_score": 87.10}, _B2D_SCORER,
                      _LEAD_README),
    PublishedBaseline("carla", "Longest6 v2", "TFv6 (RegNetY-032)", {"driving_score": 62.0}, _LB2_SCORER,
                      _LEAD_README),
    PublishedBaseline("carla", "Longest6 v2", "TFv6 (ResNet-34)", {"driving_score": 57.0}, _LB2_SCORER,
                      _LEAD_README),
)


def published_for(benchmarks: set[str]) -> tuple[PublishedBaseline, ...]:
    """The published rows for the given benchmarks (a run summary's ``benchmark`` values)."""
    return tuple(b for b in PUBLISHED_BASELINES if b.benchmark in benchmarks)
