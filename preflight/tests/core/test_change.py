"""Change files: valid ones load; every bad input is a ChangeError that says what to fix."""

from __future__ import annotations

import pytest

from preflight.core.change import MAX_FILE_BYTES, ChangeError, change_from_parts, change_load

GOOD = """title: Announce 10.42.0.0/24 from r2
description: ticket CHG-1
devices:
  r2: |
    ip route 10.42.0.0/24 Null0
    router bgp 65002
     address-family ipv4 unicast
      network 10.42.0.0/24
expect:
  prefixes_added: {r1: [10.42.0.0/24], "*": [10.42.0.0/24]}
  sessions_removed: [{node: r1, peer: 10.0.12.1}]
"""


def test_valid_change_loads_with_normalised_expect(pair):
    change = change_load(GOOD, pair)
    assert change["devices"]["r2"].startswith("ip route 10.42.0.0/24 Null0\n")
    assert change["expect"]["prefixes_added"] == {"*": ["10.42.0.0/24"], "r1": ["10.42.0.0/24"]}
    assert change["expect"]["sessions_removed"] == [{"node": "r1", "peer": "10.0.12.1"}]
    assert change["expect"]["declared"] is True
    assert change["source"] == "file"


def test_change_without_expect_is_undeclared(pair):
    change = change_load("title: t\ndevices:\n  r1: ip route 10.9.0.0/16 Null0\n", pair)
    assert change["expect"]["declared"] is False
    assert change["expect"]["prefixes_added"] == {}


def test_windows_line_endings_are_accepted(pair):
    change = change_load("title: t\r\ndevices:\r\n  r1: |\r\n    ip route 10.9.0.0/16 Null0\r\n", pair)
    assert "\r" not in change["devices"]["r1"]


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("title: [unclosed\ndevices: {}", "not valid YAML at line"),
    ("- just\n- a list\n", "must be a YAML mapping"),
    ("devices:\n  r1: ip route 10.9.0.0/16 Null0\n", "`title` is missing"),
    ("title: t\n", "`devices` is missing"),
    ("title: t\ndevices: {}\n", "the change is empty"),
    ("title: t\ndevices:\n  r1: |\n    ! only a comment\n", "no config lines"),
    ("title: t\ndevices:\n  r9: ip route 10.9.0.0/16 Null0\n", "device 'r9' is not in lab 'pair'; its routers are: r1, r2"),
    ("title: t\ndevices:\n  h1: ip route 10.9.0.0/16 Null0\n", "is a host, not an FRR router"),
    ("title: t\ndevices:\n  r1: 42\n", "must be text"),
    ("title: t\nowner: bob\ndevices:\n  r1: x\n", "unknown key(s) in the change file: owner"),
    ("title: t\ndevices:\n  r1: x\nexpect:\n  prefixes_added: {r1: [10.1.2.3/8]}\n", "has host bits set"),
    ("title: t\ndevices:\n  r1: x\nexpect:\n  prefixes_added: {r7: [10.0.0.0/8]}\n", "node 'r7' is not in lab"),
    ("title: t\ndevices:\n  r1: x\nexpect:\n  routes_gone: {}\n", "unknown key(s) in `expect`"),
    ("title: t\ndevices:\n  r1: x\nexpect:\n  sessions_removed: [r1]\n", "{node: NAME, peer: ADDRESS-OR-ID}"),
    ("title: t\ndevices:\n  r1: x\nexpect: [1]\n", "`expect` must be a mapping"),
])
def test_bad_change_files_say_what_to_fix(pair, text, fragment):
    with pytest.raises(ChangeError) as err:
        change_load(text, pair)
    assert fragment in str(err.value)


def test_oversized_file_is_refused(pair):
    text = "title: t\ndevices:\n  r1: |\n" + "    ip route 10.9.0.0/16 Null0\n" * (MAX_FILE_BYTES // 20)
    with pytest.raises(ChangeError, match="larger than 256 KiB"):
        change_load(text, pair)


def test_too_many_lines_for_one_device(pair):
    with pytest.raises(ChangeError, match="more than 2000 lines"):
        change_from_parts(title="t", description="", devices={"r1": "!x\n" + "ip route 10.9.0.0/16 Null0\n" * 2001},
                          expect=None, source="api", topology=pair)


def test_unknown_source_is_refused(pair):
    with pytest.raises(ChangeError, match="unknown change source"):
        change_from_parts(title="t", description="", devices={"r1": "x"}, expect=None, source="email", topology=pair)
