"""Change-log handler of the orders app (registered in OrdersConfig.ready): the issuing town's e-mail
and webhook channels hear of each step of its orders, after the writer committed, through alerts'
delivery outbox and its idempotent dispatcher."""

from __future__ import annotations


def order_steps_notify(events: list[tuple[str, dict]]) -> None:
    from alerts.services import order_deliveries_create

    step_ids = {payload["event"] for _, payload in events if isinstance(payload.get("event"), int)}
    if step_ids:
        order_deliveries_create(step_ids)
