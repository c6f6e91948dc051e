"""The oldest ClickHouse the service runs on, and the pure check against `version()`.

24.8 (an LTS release) is the first version that has everything the schema and the
statements rely on:

* `ReplacingMergeTree(version, is_deleted)`, soft deletes by row (23.2), and the
  `allow_experimental_replacing_merge_with_cleanup` table setting (23.12);
* lightweight `DELETE FROM` (23.3) with the `lightweight_deletes_sync` query setting (24.4);
* projections on ReplacingMergeTree tables under `deduplicate_merge_projection_mode`
  (24.8), which the rollup tables' projections need;
* `async_insert` with `wait_for_async_insert`, `insert_quorum='auto'`,
  `select_sequential_consistency`, server-side query parameters (`{name:Type}`),
  `Map` and `LowCardinality` columns, `formatQuery` (the tests): all older than 24.8.

Embedded chDB is checked the same way (its engine reports its ClickHouse version).
"""

from __future__ import annotations

import re

MINIMUM_VERSION: tuple[int, int] = (24, 8)
WHY = (
    "projections on ReplacingMergeTree need deduplicate_merge_projection_mode, "
    "lightweight deletes need lightweight_deletes_sync"
)

_LEADING_NUMBERS = re.compile(r"^\s*v?(\d+(?:\.\d+)*)")


def parse_version(text: str) -> tuple[int, ...] | None:
    """`"24.8.14.39"` → `(24, 8, 14, 39)`; None when `text` does not start with a version."""
    match = _LEADING_NUMBERS.match(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def format_version(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def version_problem(found: str, minimum: tuple[int, ...] = MINIMUM_VERSION) -> str | None:
    """One line when `found` (what `version()` answered) is older than `minimum`, else None."""
    parsed = parse_version(found)
    wanted = format_version(minimum)
    if parsed is None:
        return (
            f"reports version {found!r}, which is not a ClickHouse version number; "
            f"trace-analytics needs ClickHouse {wanted} or newer"
        )
    if parsed[: len(minimum)] < minimum:
        return (
            f"runs ClickHouse {found}, trace-analytics needs {wanted} or newer ({WHY}); "
            "upgrade the server"
        )
    return None
