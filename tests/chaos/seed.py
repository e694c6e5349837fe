"""`python -m tests.chaos.seed <webhook-url>`: one town, two public river gauges (one fed over HTTP,
one over MQTT), their default alert rules, a gateway token and a webhook channel. Prints JSON."""

import json
import sys

import django

django.setup()

from alerts.models import NotificationChannel  # noqa: E402
from alerts.services import alert_rules_sync_for_station  # noqa: E402
from tenancy.services import ingest_token_create  # noqa: E402
from tests.conftest import make_station, make_town  # noqa: E402

town = make_town("990001", "chaos-town", "chaos town")
for code in ("CH-HTTP", "CH-MQTT"):
    alert_rules_sync_for_station(make_station(town, code))
NotificationChannel.objects.create(municipality=town, kind="webhook", target=sys.argv[1], secret="chaos-secret")
token = ingest_token_create(municipality=town, label="chaos gateway")[1]
print(json.dumps({"slug": town.slug, "token": token}))
