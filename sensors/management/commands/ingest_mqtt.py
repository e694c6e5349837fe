"""manage.py ingest_mqtt: store readings that sensor gateways publish to the MQTT broker."""

import logging

from django.core.management.base import BaseCommand, CommandError

from sensors.adapters.mqtt import MqttIngestError, MqttIngestor

logger = logging.getLogger(__name__)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


class Command(BaseCommand):
    help = (
        "Subscribe to MQTT_TOPIC at MQTT_URL (QoS 1, persistent session) and store the readings gateways "
        "publish; a message is acknowledged only after its readings are committed. See docs/imports.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", help="Broker URL, mqtt:// or mqtts:// (default: settings.MQTT_URL).")
        parser.add_argument("--topic", help="Topic filter (default: settings.MQTT_TOPIC, e.g. mizumori/+/+).")
        parser.add_argument(
            "--client-id",
            help="MQTT client id; the broker keeps unacknowledged messages for it between runs "
            "(default: settings.MQTT_CLIENT_ID).",
        )
        parser.add_argument("--batch-size", type=positive_int, help="Messages per database transaction.")
        parser.add_argument("--batch-ms", type=positive_int, help="Longest wait before a partial batch is stored.")
        parser.add_argument(
            "--max-messages", type=positive_int, help="Exit after handling this many messages (tests, one-off runs)."
        )
        parser.add_argument(
            "--idle-exit", type=positive_float, metavar="SECONDS", help="Exit after this long without a message."
        )

    def handle(self, *args, **options):
        try:
            ingestor = MqttIngestor.from_settings(
                url=options["url"],
                topic=options["topic"],
                client_id=options["client_id"],
                batch_size=options["batch_size"],
                batch_milliseconds=options["batch_ms"],
                max_messages=options["max_messages"],
                idle_exit=options["idle_exit"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        ingestor.install_signal_handlers()
        try:
            stats = ingestor.run()
        except MqttIngestError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"received {stats.received}, accepted {stats.accepted} reading(s), duplicates {stats.duplicates}, "
            f"rejected message(s) {stats.rejected_messages}, acknowledged {stats.acknowledged}"
        )
