"""The devnet's service table. Each network contributes named groups from its own
``devnet.py`` (``zgos.runtime.service``): a function that lists its services for the chosen
options, and the groups it needs running first. ``devnet_services`` returns the services of the
groups asked for (``zg devnet up --only``) and of every group they need, in table order (the
chain first); ``all_services`` returns the whole table."""

from __future__ import annotations

from collections.abc import Iterable

from zgos.alignment.devnet import ALIGNMENT_GROUP
from zgos.chain.devnet import CHAIN_GROUP
from zgos.compute.devnet import INFERENCE_GROUP
from zgos.compute.finetune.devnet import FINETUNE_GROUP
from zgos.core.errors import ConfigError
from zgos.da.devnet import DA_GROUP
from zgos.explorer.devnet import EXPLORER_GROUP
from zgos.inft.devnet import INFT_GROUP
from zgos.kv.devnet import KV_GROUP
from zgos.runtime.service import DevnetOptions, Service, ServiceGroup
from zgos.storage.devnet import REPAIRER_GROUP, STORAGE_GROUP
from zgos.storage.indexer.devnet import INDEXER_GROUP

# In table order (a group after the groups it needs); ``up`` starts each group once the groups it
# needs are ready, side by side (``zgos.devnet.schedule``), and the explorer last: it shows the rest.
SERVICE_GROUPS: tuple[ServiceGroup, ...] = (
    CHAIN_GROUP, STORAGE_GROUP, INDEXER_GROUP, KV_GROUP, REPAIRER_GROUP, INFERENCE_GROUP, FINETUNE_GROUP, DA_GROUP,
    INFT_GROUP, ALIGNMENT_GROUP, EXPLORER_GROUP,
)


def resolve_groups(asked: Iterable[str], groups: Iterable[ServiceGroup] = SERVICE_GROUPS) -> list[ServiceGroup]:
    """The groups ``asked`` for and every group they need, transitively, in table order;
    nothing asked for means every group. Raises ``ConfigError`` for a name not in the table."""
    groups = list(groups)
    by_name = {group.name: group for group in groups}
    wanted: set[str] = set()
    pending = list(asked)
    if not pending:
        return groups
    while pending:
        name = pending.pop()
        if name not in by_name:
            raise ConfigError(f"no devnet service group named {name!r}", f"groups: {', '.join(by_name)}")
        if name not in wanted:
            wanted.add(name)
            pending.extend(by_name[name].needs)
    return [group for group in groups if group.name in wanted]


def devnet_services(options: DevnetOptions) -> list[Service]:
    """The services ``options`` asks for (``only`` and what it needs), in table order (the
    chain first, a group after the groups it needs)."""
    return [service for group in resolve_groups(options.only) for service in group.services(options)]


def all_services(options: DevnetOptions) -> list[Service]:
    """Every service of the table for these options, whatever ``only`` says."""
    return [service for group in SERVICE_GROUPS for service in group.services(options)]
