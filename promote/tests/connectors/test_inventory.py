"""Device inventory validation: bad entries are refused with the device and field to fix."""

from __future__ import annotations

import pytest

from promote.connectors.base import InventoryError, device_inventory_load

GOOD = {
    "devices": {
        "r1": {"host": "10.1.0.1", "username": "aegis", "key_file": "/etc/aegis/id", "use_sudo": True},
        "leaf1": {"host": "10.1.0.9", "platform": "arista_eos", "port": 2222, "password": "x"},
    }
}


def test_good_inventory():
    specs = device_inventory_load(GOOD)
    assert specs["r1"].platform == "frr" and specs["r1"].port == 22 and specs["r1"].use_sudo
    assert specs["leaf1"].port == 2222
    assert "password" not in specs["leaf1"].describe(), "secrets never go into a record"


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"key_file": "/k"}, "devices.r1.host: missing"),
        ({"host": "h", "key_file": "/k", "port": "22"}, "devices.r1.port: must be a whole number"),
        ({"host": "h", "key_file": "/k", "port": 70000}, "devices.r1.port"),
        ({"host": "h", "key_file": "/k", "platform": "nxos"}, "'nxos' is not one of"),
        ({"host": "h", "key_file": "/k", "hostname": "x"}, "unknown field(s) hostname"),
        ({"host": "h"}, "give `key_file`"),
        ({"host": "h", "key_file": "/k", "use_sudo": "yes"}, "use_sudo: must be true or false"),
        ({"host": "h", "key_file": "/k", "timeout": 0}, "timeout: must be a positive number"),
        ("10.0.0.1", "expected a mapping"),
    ],
)
def test_bad_entries_name_device_and_field(entry, fragment):
    with pytest.raises(InventoryError) as err:
        device_inventory_load({"devices": {"r1": entry}})
    assert fragment in str(err.value)


@pytest.mark.parametrize("data", [None, {}, {"devices": {}}, {"devices": []}])
def test_empty_or_wrong_shape(data):
    with pytest.raises(InventoryError, match="non-empty `devices:`"):
        device_inventory_load(data)


def test_all_problems_reported_at_once():
    with pytest.raises(InventoryError) as err:
        device_inventory_load(
            {"devices": {"a": {"key_file": "/k"}, "b": {"host": "h", "key_file": "/k", "port": 0}}}
        )
    assert "devices.a.host" in str(err.value) and "devices.b.port" in str(err.value)
