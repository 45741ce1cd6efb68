"""A store keeps its schema version (`frontier_meta`): opening one written by an older
Frontier upgrades it in place, step by step, and one written by a newer Frontier is
refused rather than misread.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.store.errors import StoreError
from engine.store.schema import SCHEMA_VERSION, meta
from engine.store.writes import insert_ignore

__all__ = ["check_schema"]

# In-place upgrades from each version to the next; the rows stay, their meaning too.
_UPGRADES: dict[int, list[str]] = {
    1: ["ALTER TABLE feedback ADD COLUMN implicit JSON"],
    2: [
        # keys were global (a key used on two suggestions kept only the first feedback):
        # scope every key to its suggestion; keys made from the content were "<id>:<hash>"
        "UPDATE feedback SET idempotency_key = suggestion_id || '/auto:' || "
        "substr(idempotency_key, length(suggestion_id) + 2) "
        "WHERE substr(idempotency_key, 1, length(suggestion_id) + 1) = suggestion_id || ':'",
        "UPDATE feedback SET idempotency_key = suggestion_id || '/' || idempotency_key "
        "WHERE substr(idempotency_key, 1, length(suggestion_id) + 6) <> suggestion_id || '/auto:'",
        "ALTER TABLE trials ADD COLUMN run_id VARCHAR(64)",
    ],
    3: ["DROP TABLE IF EXISTS variant_changes"],  # a placeholder no release wrote; `variants` replaces it
    4: ["ALTER TABLE feedback ADD COLUMN comment TEXT"],
    5: [],  # new tables only (models, jobs, tombstones): created as any table is
    6: [],  # a new table only (runs)
}


def check_schema(engine: Engine, url: str) -> None:
    """Create the version mark, or upgrade an older store in place, step by step."""
    with engine.begin() as conn:
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        if found is None:
            insert_ignore(conn, meta, [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])
            return
        if int(found) > SCHEMA_VERSION:
            raise StoreError(
                f"the store at {url!r} has schema version {found}, newer than this "
                f"Frontier's {SCHEMA_VERSION}; upgrade Frontier"
            )
        for version in range(int(found), SCHEMA_VERSION):
            for statement in _UPGRADES[version]:
                conn.execute(sa.text(statement))
            conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version + 1)))
