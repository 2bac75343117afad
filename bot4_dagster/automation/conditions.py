"""When a downstream asset refreshes on its own: the automation conditions of the asset graph.

``eager()`` requests a partition when a dependency updates, never while one is missing or in
progress; ``all_deps_blocking_checks_passed()`` holds it back while any dependency's blocking
check has failed (eager alone does not: dagster-io/dagster#17332). Optional inputs (trades and
quotes, which a bars-only source never has) must not count as missing, or a bars-only symbol
would never refresh; their blocking checks still hold whenever they exist.
"""

from __future__ import annotations

import dagster as dg

AC = dg.AutomationCondition


def refresh_when_deps_update(*optional: dg.AssetKey) -> dg.AutomationCondition:
    """``eager() & all_deps_blocking_checks_passed()``, tolerating absent ``optional`` deps."""
    checks_passed = AC.all_checks_match(AC.check_passed() | AC.will_be_requested(),
                                        blocking_only=True)
    if not optional:
        return AC.eager() & AC.all_deps_blocking_checks_passed()
    absent_ok = dg.AssetSelection.assets(*optional)
    return (
        AC.eager().replace("any_deps_missing", AC.any_deps_missing().ignore(absent_ok))
        & AC.all_deps_match(checks_passed | AC.missing()).with_label(
            "all_deps_blocking_checks_passed (absent optional deps allowed)")
    )
