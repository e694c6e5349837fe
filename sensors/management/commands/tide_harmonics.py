"""manage.py tide_harmonics CODE (--fit [--days N] [--constituents M2,S2,…] | --file constants.json | --show):
a tide gauge's astronomical-tide baseline (sensors.tide), fitted from its own good readings or
entered from a table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sensors.models import Observation, Station, StationKind
from sensors.selectors import tide_harmonics_of
from sensors.services import tide_harmonics_set
from sensors.tide import PRINCIPAL, SPEEDS_DEG_PER_HOUR, TideError, fit, harmonics_from_document

MAX_FILE_BYTES = 64 * 1024
MAX_DAYS = 3 * 366


class Command(BaseCommand):
    help = (
        "Set a tide gauge's harmonic constants (the astronomical tide its anomaly is read against): "
        "--fit from its own good readings, or --file a JSON document {mean_level, epoch, constituents: "
        "[{name, amplitude, phase}]}. --show prints what is stored. See docs/api.md (tide)."
    )

    def add_arguments(self, parser):
        parser.add_argument("code")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--fit", action="store_true", help="Fit from the gauge's readings of the last --days.")
        action.add_argument("--file", help="Read the constants from this JSON file.")
        action.add_argument("--show", action="store_true", help="Print the stored constants as JSON.")
        parser.add_argument("--days", type=int, default=30, help="With --fit: how many days of readings (2 to 1098).")
        parser.add_argument(
            "--constituents", default=",".join(PRINCIPAL),
            help=f"With --fit: comma-separated, of {', '.join(SPEEDS_DEG_PER_HOUR)}.",
        )

    def handle(self, *args, code, **options):
        station = Station.objects.filter(code=code).first()
        if station is None:
            raise CommandError(f"No station with code {code[:40]!r}.")
        if station.kind != StationKind.TIDE:
            raise CommandError(f"{station.code} is a {station.kind} station; only tide gauges have harmonic constants.")
        if options["show"]:
            harmonics = tide_harmonics_of(station)
            if harmonics is None:
                raise CommandError(f"{station.code} has no harmonic constants yet.")
            self.stdout.write(json.dumps(harmonics.as_document(), ensure_ascii=False, indent=2))
            return
        try:
            if options["fit"]:
                harmonics, source = self._fit(station, options["days"], options["constituents"])
            else:
                harmonics, source = self._read(Path(options["file"])), f"file {Path(options['file']).name}"[:200]
        except TideError as exc:
            raise CommandError(str(exc)) from None
        tide_harmonics_set(station=station, harmonics=harmonics, source=source)
        self.stdout.write(json.dumps(harmonics.as_document(), ensure_ascii=False))
        self.stdout.write(f"{station.code}: {len(harmonics.constituents)} constituents stored ({source}).")

    def _fit(self, station, days: int, names: str):
        if not 2 <= days <= MAX_DAYS:
            raise CommandError(f"--days must be between 2 and {MAX_DAYS}.")
        wanted = [name.strip() for name in names.split(",") if name.strip()]
        since = timezone.now() - timedelta(days=days)
        rows = list(
            Observation.objects.filter(station=station, observed_at__gte=since, quality="ok")
            .order_by("observed_at").values_list("observed_at", "value")
        )
        # The epoch is the start of the year of the first reading: phases stay comparable between fits.
        epoch = datetime(rows[0][0].year if rows else since.year, 1, 1, tzinfo=UTC)
        harmonics = fit([at for at, _ in rows], [value for _, value in rows], epoch=epoch, names=wanted)
        return harmonics, f"fitted from {len(rows)} readings since {since:%Y-%m-%d}"

    def _read(self, path: Path):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise CommandError(f"{path.name}: larger than {MAX_FILE_BYTES // 1024} KiB.")
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CommandError(f"{path}: no such file.") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(f"{path.name}: not UTF-8 JSON ({str(exc)[:80]}).") from None
        return harmonics_from_document(document)
