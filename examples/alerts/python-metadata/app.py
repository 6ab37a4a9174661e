"""Remora alert plugin: flags reads of the cloud instance-metadata service.

A pod that reads 169.254.169.254/latest/meta-data can usually pick up the
node's cloud credentials, so every such request is reported as critical.
The host applies the prefilter, so every entry that arrives here already
matched it; the plugin only turns entries into alerts.
"""

from typing import List, Optional

from wit_world import exports
from wit_world.imports import host
from wit_world.imports.alert_types import (
    Alert,
    AlertEntry,
    AlertPluginInfo,
    EntryBatch,
    EntryField,
    EntryValue_Str,
    Severity,
)

NAME = "cloud-metadata"
VERSION = "0.1.0"
RULE = "cloud-metadata-access"
METADATA_IP = "169.254.169.254"
PREFILTER = (
    f'http && dst.ip == "{METADATA_IP}" && path.startsWith("/latest/meta-data")'
)
# Labels and summaries end up in webhooks and the dashboard; a hostile path
# must not make them arbitrarily long.
MAX_PATH_CHARS = 512


def _field_str(
    fields: Optional[List[EntryField]], names: List[str], wanted: str
) -> Optional[str]:
    """The first string value of the field named `wanted`, if any."""
    if fields is None:
        return None
    for field in fields:
        # An index outside the table is a host bug; skip it rather than trap.
        if field.name < len(names) and names[field.name] == wanted:
            if isinstance(field.value, EntryValue_Str):
                return field.value.value
    return None


def _clip(text: str) -> str:
    if len(text) <= MAX_PATH_CHARS:
        return text
    return text[:MAX_PATH_CHARS] + "…"


def _alert_for(entry: AlertEntry, names: List[str]) -> Alert:
    path = _field_str(entry.request, names, "path") or "?"
    method = _field_str(entry.request, names, "method") or "?"
    src = entry.src.ip
    who = entry.src.name if entry.src.name and entry.src.name != src else src
    path = _clip(path)
    return Alert(
        rule=RULE,
        severity=Severity.CRITICAL,
        summary=f"{who} ({src}) read cloud metadata: {method} {path}",
        entry_ids=[entry.id],
        labels=[("src", src), ("path", path)],
    )


class Alerter(exports.Alerter):
    def describe(self) -> AlertPluginInfo:
        return AlertPluginInfo(
            name=NAME, version=VERSION, prefilter=PREFILTER, tick_ms=0
        )

    def on_entries(self, batch: EntryBatch) -> List[Alert]:
        alerts = [_alert_for(entry, batch.names) for entry in batch.entries]
        if alerts:
            host.log(host.Level.DEBUG, f"{len(alerts)} metadata access(es)")
        return alerts

    def on_tick(self, now_us: int) -> List[Alert]:
        # tick-ms is 0, so the host never calls this; it is part of the world.
        return []
