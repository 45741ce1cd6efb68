"""Which contexts an experiment has, agreed by every engine through the store.

A request names a context by label, or by a feature vector that `ContextClusters`
(engine/online/contexts.py) labels. The first `contexts.max` labels asked for, in the
store's order, are the experiment's contexts; any later one is served in the default
context, or refused when the spec says `overflow: reject`. So the contexts, and their
models (docs/online-model.md), stay bounded whatever clients send.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.online.contexts import ContextClusters
from engine.online.protocol import InvalidRequest
from engine.spec import ExperimentSpec
from engine.store import EventStore

__all__ = ["ContextAdmission"]

log = logging.getLogger(__name__)


class ContextAdmission:
    """One experiment's contexts, read from the store as far as it has been read."""

    def __init__(self, store: EventStore, spec: ExperimentSpec) -> None:
        self.store = store
        self.spec = spec
        self.clusters = ContextClusters(max_clusters=spec.contexts.max, features=spec.context_features())
        self.clustered_seq = 0  # the last suggestion whose features the clusters learnt
        self.admitted = set(spec.contexts.labels)
        self.contexts_seq = 0  # the last context row read

    def resolve(
        self, context: str | Sequence[float] | None
    ) -> tuple[str | None, str | dict[str, Any] | None]:
        """The context a request is served in, and what its suggestion stores of it."""
        if context is None:
            return None, None
        if isinstance(context, str):
            label = self.admit(context)
            return label, context if label == context else {"label": None, "requested": context}
        features = [float(v) for v in context]
        cluster = self._cluster_label(features)
        label = self.admit(cluster)
        stored = {"label": label, "features": features}
        return label, stored if label == cluster else {**stored, "requested": cluster}

    def admit(self, label: str) -> str | None:
        """`label` if it is one of the experiment's contexts, or becomes one now (the first
        `contexts.max` asked for, in the store's order, are); else the default context
        (None), or a refusal when the spec says `overflow: reject`."""
        bound = self.spec.contexts
        if label not in self.admitted and len(self.admitted) < bound.max:
            self._read()
            if label not in self.admitted and len(self.admitted) < bound.max:
                self.store.add_context(self.spec.name, label)
                self._read()
        if label in self.admitted:
            return label
        if bound.overflow == "reject":
            raise InvalidRequest(
                f"context {label!r} is not one of experiment {self.spec.name!r}'s {bound.max} contexts "
                "(contexts.max is reached); send one of its contexts, or raise contexts.max in its spec"
            )
        return None

    def _read(self) -> None:
        for row in self.store.contexts_since(self.spec.name, self.contexts_seq):
            if len(self.admitted) < self.spec.contexts.max:
                self.admitted.add(row["label"])
            self.contexts_seq = row["seq"]

    def _cluster_label(self, features: list[float]) -> str:
        """Learn every stored feature vector in write order, then label these ones."""
        declared = self.clusters.features
        if declared is None:
            raise InvalidRequest(
                f"experiment {self.spec.name!r} takes context labels, not features; "
                "declare contexts.features in its spec to send feature vectors"
            )
        if len(features) != declared or not all(np.isfinite(features)):
            raise InvalidRequest(
                f"context features have {len(features)} values; experiment {self.spec.name!r} takes "
                f"{declared} finite numbers (contexts.features)"
            )
        for row in self.store.suggestions_since(self.spec.name, self.clustered_seq):
            stored = row["context"]
            if isinstance(stored, dict) and stored.get("label") is not None and "features" in stored:
                try:
                    self.clusters.assign(stored["features"])
                except ValueError as e:  # e.g. another length, stored before lengths were declared
                    log.error("%s: context of suggestion seq %s skipped (%s)", self.spec.name, row["seq"], e)
            self.clustered_seq = row["seq"]
        return self.clusters.label_for(features)
