"""The bc_dagger benchmark's verdict: each DAgger row is compared with the BC row holding its labels."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
bc_dagger = pytest.importorskip("bc_dagger")


def _row(method, success, labels, seed=0):
    return dict(method=method, seed=seed, pc_success=success, avg_max_reward=0.5, expert_labels=labels)


def test_dagger_short_of_its_budget_is_still_judged_against_the_bc_row_with_more_labels():
    rows = [_row("bc-200", 70, 13598), _row("dagger", 85, 12900), _row("bc-50", 30, 3495), _row("dagger@bc-50", 40, 3440)]
    summary, met = bc_dagger.summarize("pusht", rows)
    assert met is True
    assert list(summary) == ["bc-50", "dagger@bc-50", "bc-200", "dagger"]  # each DAgger row after its BC row


def test_pusht_verdict_needs_dagger_ahead_of_bc_and_a_bc_row():
    assert bc_dagger.summarize("pusht", [_row("bc-200", 90, 13598), _row("dagger", 85, 13598)])[1] is False
    assert bc_dagger.summarize("pusht", [_row("dagger", 85, 13598)])[1] is None  # nothing to compare with
    assert bc_dagger.summarize("pusht", [_row("bc-200", 90, 13598)])[1] is None  # no DAgger row
    assert bc_dagger.summarize("pusht", [_row("bc-50", 30, 3495), _row("dagger", 85, 13598)])[1] is None  # fewer labels
    assert bc_dagger.summarize("aloha_transfer", [_row("dagger", 85, 20000)])[1] is True  # ALOHA: >= 80% alone
