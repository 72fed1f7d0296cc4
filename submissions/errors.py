"""The error every leaderboard-file writer raises when predictions or metadata cannot make a valid submission."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from harness.errors import LeadBenchError

#: How many problems an error message lists before it only counts the rest.
SHOWN_PROBLEMS = 10


class SubmissionValidationError(LeadBenchError, ValueError):
    """Predictions or metadata cannot make a valid submission; nothing was written.

    Attributes:
        problems: every problem found, one line each (the message shows the first :data:`SHOWN_PROBLEMS`).
    """

    def __init__(self, what: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "\n  ".join(self.problems[:SHOWN_PROBLEMS])
        more = (f"\n  ... and {len(self.problems) - SHOWN_PROBLEMS} more"
                if len(self.problems) > SHOWN_PROBLEMS else "")
        super().__init__(f"{what}: {len(self.problems)} problem(s):\n  {shown}{more}")


def listed(names: Iterable[object]) -> str:
    """``"[a, b, ... 3 more]"``: the first :data:`SHOWN_PROBLEMS` names, sorted, for an error message."""
    items = list(names)
    try:
        items.sort()  # numbers in numeric order
    except TypeError:
        items.sort(key=str)
    shown = ", ".join(map(str, items[:SHOWN_PROBLEMS]))
    more = f", ... {len(items) - SHOWN_PROBLEMS} more" if len(items) > SHOWN_PROBLEMS else ""
    return f"[{shown}{more}]"


__all__ = ["SHOWN_PROBLEMS", "SubmissionValidationError", "listed"]
