"""Change-log handler of the releases app (registered in ReleasesConfig.ready): the downstream towns'
e-mail and webhook channels hear of each transition of a notice, after the writer committed."""

from __future__ import annotations

from alerts.services import release_deliveries_create


def release_transitions_notify(events: list[tuple[str, dict]]) -> None:
    transition_ids = {pk for _, payload in events for pk in payload.get("transitions", [])}
    if transition_ids:
        release_deliveries_create(transition_ids)
