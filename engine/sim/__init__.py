"""Simulated users against the online engine: the driver (`frontier simulate`) and the
demo (`make demo`). The users themselves are the spec's objective (`objectives/users.py`)."""

from engine.sim.driver import (
    TARGET_STARS,
    OnlineAPI,
    SimulatedPerson,
    SimulationResult,
    drive_users,
    simulate,
    simulated_users,
)

__all__ = [
    "TARGET_STARS",
    "OnlineAPI",
    "SimulatedPerson",
    "SimulationResult",
    "drive_users",
    "simulate",
    "simulated_users",
]
