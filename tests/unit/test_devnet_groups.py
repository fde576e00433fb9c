"""``zg devnet up --only``: which service groups start (the ones asked for and every group
they need, in table order), and the options saved with a devnet."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zgos.core.errors import ConfigError
from zgos.devnet.services import SERVICE_GROUPS, all_services, devnet_services, resolve_groups
from zgos.runtime.service import DevnetOptions, Service, ServiceGroup


def _no_services(options: DevnetOptions) -> list[Service]:
    return []


@st.composite
def tables(draw: st.DrawFn) -> list[ServiceGroup]:
    """A table of groups where each group needs only groups before it (as the real one)."""
    size = draw(st.integers(min_value=1, max_value=8))
    groups: list[ServiceGroup] = []
    for i in range(size):
        needs = draw(st.sets(st.integers(min_value=0, max_value=i - 1))) if i else set()
        groups.append(ServiceGroup(f"g{i}", _no_services, tuple(f"g{j}" for j in sorted(needs))))
    return groups


@given(tables(), st.data())
def test_the_groups_started_are_the_ones_asked_for_and_everything_they_need(
    table: list[ServiceGroup], data: st.DataObject
) -> None:
    asked = data.draw(st.lists(st.sampled_from([g.name for g in table]), min_size=1))
    chosen = resolve_groups(asked, table)
    names = [group.name for group in chosen]
    assert set(asked) <= set(names)
    assert names == [g.name for g in table if g.name in names], "table order"
    for group in chosen:
        assert set(group.needs) <= set(names), "every need is started"
    # and nothing else: each chosen group is asked for or needed by a chosen group
    needed = {need for group in chosen for need in group.needs}
    assert set(names) <= set(asked) | needed


@given(tables())
def test_asking_for_no_group_starts_every_group(table: list[ServiceGroup]) -> None:
    assert resolve_groups((), table) == table


def test_an_unknown_group_is_an_error_that_lists_the_groups() -> None:
    with pytest.raises(ConfigError, match="no devnet service group named 'dns'") as raised:
        resolve_groups(["storage", "dns"], SERVICE_GROUPS)
    assert raised.value.hint is not None and "storage" in raised.value.hint


def test_the_devnet_tables_groups_pull_in_what_they_need() -> None:
    def started(*only: str) -> list[str]:
        return [s.name for s in devnet_services(DevnetOptions(chain_port=23000, only=only))]

    assert started("chain") == ["chain"]
    assert started("storage") == ["chain", "storage-0"]
    assert started("indexer") == ["chain", "storage-0", "indexer"]
    assert started("kv") == ["chain", "storage-0", "kv-0"]
    assert started("compute") == ["chain", "storage-0", "model", "provider-0"]
    assert started("finetune") == ["chain", "storage-0", "model", "provider-0", "finetune-provider"]
    assert started("alignment")[-1] == "auditor" and {"da-disperser", "provider-0"} <= set(started("alignment"))
    assert started("explorer") == ["chain", "explorer"], "the explorer starts last but pulls nothing in"
    assert started("da")[0] == "chain" and started("da")[-1] == "da-disperser"
    assert started() == [s.name for s in all_services(DevnetOptions(chain_port=23000))]
    assert started()[-1] == "explorer"


def test_devnet_options_survive_the_saved_network_record() -> None:
    options = DevnetOptions(chain_port=23000, storage_nodes=3, only=("da", "storage"), mine=False, da_signers=2)
    saved = json.loads(json.dumps(options.to_json()))
    assert DevnetOptions.from_json(saved) == options
    older = {k: v for k, v in saved.items() if k not in ("only", "mine", "da_signers")}
    older["extra"] = {}  # a devnet saved before --only, with the untyped options of then
    assert DevnetOptions.from_json(older) == DevnetOptions(chain_port=23000, storage_nodes=3)
