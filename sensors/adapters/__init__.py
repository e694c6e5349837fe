"""Source adapters: turn what a gateway or a file delivers into items for `sensors.services.observation_ingest`.

Adapters read, parse and report; they never write observations themselves.
"""
