"""A world's status, decided in one place for the live table and for the run's records, and the line that says
why a world failed."""

from __future__ import annotations


def world_status(world: int, steps_done: int, planned: int, *, merged, pruned, failed: bool = False) -> str:
    """failed | completed (its planned steps done) | merged (stopped as a duplicate of a better world) |
    pruned (stopped by the scheduler before its last step) | interrupted (none of these: Ctrl-C, a lost
    driver). `pruned` None: while Tune runs, where a world that ended early and was not merged was pruned."""
    if failed:
        return "failed"
    if steps_done >= planned:
        return "completed"
    if world in merged:
        return "merged"
    if pruned is None or world in pruned:
        return "pruned"
    return "interrupted"


def last_error_line(text: str) -> str:
    """The line of an error text that says what went wrong (its last non-empty line), at most 300 chars."""
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "")[:300]
