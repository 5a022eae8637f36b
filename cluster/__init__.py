"""cluster: run esopt tuning campaigns on Ray with a durable SQLite journal.

Public names: :class:`Space` (named hyperparameters <-> the unit cube), :func:`load_config` /
:func:`parse_config` / :class:`ConfigError` (the campaign YAML), :class:`Campaign` /
:class:`CampaignResult` / :class:`CampaignLocked` (the driver), :class:`Journal` /
:class:`JournalError` (the SQLite journal, readable while a campaign runs).

Importing this package does not import Ray (it is imported when a campaign runs).
"""

from .campaign import Campaign, CampaignLocked, CampaignResult
from .config import CampaignConfig, ConfigError, load_config, parse_config
from .space import Param, Space
from .store import Journal, JournalError

__all__ = [
    "Campaign",
    "CampaignConfig",
    "CampaignLocked",
    "CampaignResult",
    "ConfigError",
    "Journal",
    "JournalError",
    "Param",
    "Space",
    "load_config",
    "parse_config",
]
