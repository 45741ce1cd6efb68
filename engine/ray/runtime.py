"""Joining Ray: the cluster named by RAY_ADDRESS (e.g. under `ray job submit`) or a new local one."""

from __future__ import annotations

import logging

import ray


def ensure_ray() -> None:
    if not ray.is_initialized():
        ray.init(logging_level=logging.WARNING, log_to_driver=False)
