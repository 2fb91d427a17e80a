"""Comparing one suite's results against etcd with its results against this store.

etcd is the reference: a test that passes against etcd and not against the store is a
regression of the store, unless it is listed as an expected difference (work under way
elsewhere, with its reason). A test that fails against both is broken in the suite itself
(it assumes an old etcd, a file that is not shipped, ...) and is only reported. A listed
difference whose test passes again is stale and fails the comparison, so the list shrinks
as the work lands (the same rule as a strict xfail).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.peers.results import Outcome, Result


@dataclass(frozen=True)
class Comparison:
    suite: str
    etcd: Mapping[str, Result]
    kvstore: Mapping[str, Result]
    regressions: list[tuple[str, str]] = field(default_factory=list)
    """(test, the store's failure message): passes against etcd, not against the store."""
    expected: list[tuple[str, str]] = field(default_factory=list)
    """(test, reason): a listed difference that did show."""
    stale: list[str] = field(default_factory=list)
    """Listed differences whose test passes against the store now."""
    known_broken: list[str] = field(default_factory=list)
    """Tests that fail against etcd and against the store alike."""
    store_only: list[str] = field(default_factory=list)
    """Tests that pass against the store but not against etcd."""

    @property
    def total(self) -> int:
        return len(set(self.etcd) | set(self.kvstore))

    @staticmethod
    def passed(results: Mapping[str, Result]) -> int:
        return sum(r.outcome is Outcome.PASSED for r in results.values())

    @property
    def ok(self) -> bool:
        return not self.regressions and not self.stale

    def summary(self) -> str:
        """One line: ``python-etcd3: etcd 81/82, kvstore 80/82`` and what was set aside."""
        line = (
            f"{self.suite}: etcd {self.passed(self.etcd)}/{self.total}, "
            f"kvstore {self.passed(self.kvstore)}/{self.total}"
        )
        notes = []
        if self.known_broken:
            notes.append(f"{len(self.known_broken)} broken in the suite (fail on both)")
        if self.expected:
            notes.append(f"{len(self.expected)} expected difference(s)")
        if self.regressions:
            notes.append(f"{len(self.regressions)} REGRESSION(S)")
        return line + (f" ({'; '.join(notes)})" if notes else "")

    def report(self) -> str:
        """Every finding, one per line, for a failure message or a log."""
        lines = [self.summary()]
        lines += [f"  regression: {test}: {message}" for test, message in self.regressions]
        lines += [
            f"  stale expected difference (passes now; remove it from "
            f"tests/peers/expected.py): {test}"
            for test in self.stale
        ]
        lines += [f"  expected difference: {test}: {reason}" for test, reason in self.expected]
        lines += [f"  broken in the suite: {test}" for test in self.known_broken]
        lines += [f"  passes only against the store: {test}" for test in self.store_only]
        return "\n".join(lines)


def compare(
    suite: str,
    etcd: Mapping[str, Result],
    kvstore: Mapping[str, Result],
    expected: Mapping[str, str] | None = None,
) -> Comparison:
    """Classify every test of ``suite`` (see the module docstring). A test missing from
    one run (the run crashed before it) counts as failed there; tests skipped against
    both are left out of every list."""
    listed = dict(expected or {})
    result = Comparison(suite, etcd, kvstore)
    missing = Result(Outcome.FAILED, "did not run")
    for test in sorted(set(etcd) | set(kvstore)):
        theirs, ours = etcd.get(test, missing), kvstore.get(test, missing)
        etcd_passed = theirs.outcome is Outcome.PASSED
        store_passed = ours.outcome is Outcome.PASSED
        if test in listed:
            if store_passed:
                result.stale.append(test)
            else:
                result.expected.append((test, listed[test]))
        elif etcd_passed and not store_passed:
            result.regressions.append((test, ours.message or ours.outcome.name.lower()))
        elif theirs.outcome is Outcome.FAILED and ours.outcome is Outcome.FAILED:
            result.known_broken.append(test)
        elif store_passed and not etcd_passed and theirs.outcome is Outcome.FAILED:
            result.store_only.append(test)
    return result
