"""Requests the platform sends to URLs that users chose (alert webhooks, NGSI subscription
notifications): where they may go (`destinations`) and how they are sent (`http`).

A plain package at the bottom of the dependency graph: it imports only Django settings, so both
`alerts` and `ngsi` use it without depending on each other, and `tenancy` (which is about towns,
not network policy) stays what it is.
"""
