"""Drift check: harmless lines are ignored, every real change is drift."""

from __future__ import annotations

import pytest

from promote.core.drift import config_digest, config_normalize, drift_check, drift_settle_by_delta

BASE = """frr version 8.4.4
frr defaults datacenter
hostname r1
!
router bgp 65001
 neighbor 10.0.12.1 remote-as 65002
exit
!
"""

RUNNING = """Building configuration...

Current configuration:
!
frr version 8.5.1
frr defaults datacenter
hostname r1
!
router bgp 65001   \r
 neighbor 10.0.12.1 remote-as 65002
exit
!
end
"""


def test_show_running_framing_and_version_are_not_drift():
    assert config_digest(RUNNING) == config_digest(BASE)
    assert drift_check("r1", RUNNING, baseline_text=BASE).ok
    assert drift_check("r1", RUNNING, baseline_digest=config_digest(BASE)).ok


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t.replace("remote-as 65002", "remote-as 65003"),
        lambda t: t.replace("frr defaults datacenter", "frr defaults traditional"),
        lambda t: t.replace("hostname r1", "hostname r9"),
        lambda t: t + "ip route 10.9.0.0/16 Null0\n",
        lambda t: t.replace(" neighbor 10.0.12.1 remote-as 65002\n", ""),
    ],
    ids=["peer-as", "defaults", "hostname", "added-route", "removed-neighbor"],
)
def test_real_changes_are_drift(edit):
    result = drift_check("r1", edit(RUNNING), baseline_text=BASE)
    assert not result.ok
    assert "stale" in result.reason and "r1" in result.reason
    assert result.diff, "a baseline text gives the operator a diff"


def test_line_order_is_meaningful():
    a = "ip prefix-list P seq 5 permit 10.0.0.0/8\nip prefix-list P seq 10 deny any\n"
    b = "ip prefix-list P seq 10 deny any\nip prefix-list P seq 5 permit 10.0.0.0/8\n"
    assert config_digest(a) != config_digest(b)


def test_normalize_keeps_indentation_and_drops_separators():
    assert (
        config_normalize("!\nrouter bgp 1\n neighbor x remote-as 2\n!\nend\n")
        == "router bgp 1\n neighbor x remote-as 2\n"
    )


def test_no_baseline_is_an_error():
    with pytest.raises(ValueError, match="no baseline"):
        drift_check("r1", RUNNING)


HAND_WRITTEN = "hostname r1\n! the edge router\nrouter bgp 65001\n neighbor 10.0.12.1 remote-as 65002\n"


def test_form_only_differences_are_settled_by_frr_reload():
    first = drift_check("r1", RUNNING, baseline_text=HAND_WRITTEN)
    assert not first.ok, "the digests differ: comments and missing `exit` lines"
    settled = drift_settle_by_delta(first, [], [])
    assert settled.ok and settled.method == "frr-reload"


def test_frr_reload_delta_is_drift_in_its_own_words():
    first = drift_check("r1", RUNNING + "ip route 10.99.0.0/24 Null0\n", baseline_text=HAND_WRITTEN)
    settled = drift_settle_by_delta(first, ["no ip route 10.99.0.0/24 Null0"], [])
    assert not settled.ok and settled.method == "frr-reload"
    assert "1 line(s) only on the device" in settled.reason and "stale" in settled.reason
    assert settled.diff == [
        "frr-reload would delete (only on the device):",
        "no ip route 10.99.0.0/24 Null0",
        "frr-reload would add (only in the baseline):",
    ]


def test_an_identical_digest_is_never_second_guessed():
    first = drift_check("r1", RUNNING, baseline_text=BASE)
    assert drift_settle_by_delta(first, ["no x"], []) is first
