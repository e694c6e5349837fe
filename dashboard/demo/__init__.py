"""The demo: a FICTIONAL river basin (region.py), the services that write it (seed.py), and the storm
simulator that feeds it through the ingestion service (storm.py). Nothing here is real data."""
