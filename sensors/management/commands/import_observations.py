"""manage.py import_observations FILE.csv: stream a large observation CSV through the ingestion service."""

import sys

from django.core.management.base import BaseCommand, CommandError

from sensors.adapters.csv_import import CsvImportError, ObservationCsvImport
from tenancy.models import Municipality


class Command(BaseCommand):
    help = (
        "Import observations from a CSV file with the header station,observed_at,value, in batches, "
        "resumable. Rejected rows go to a CSV file with line numbers and reasons. See docs/imports.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file (UTF-8, BOM allowed).")
        parser.add_argument(
            "--municipality", metavar="SLUG", help="Only this town's stations may be written (default: any station)."
        )
        parser.add_argument("--rejected-file", metavar="PATH", help="Where rejected rows go (default: FILE.rejected.csv).")
        parser.add_argument("--batch-size", type=int, default=10_000, help="Rows per transaction (at most 10000).")
        parser.add_argument(
            "--resume", action="store_true", help="Continue after the last committed batch (checkpoint FILE.progress)."
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (for logs and cron).")

    def handle(self, *args, **options):
        municipality = self._municipality(options["municipality"])
        try:
            result = ObservationCsvImport(
                options["file"],
                municipality=municipality,
                rejected_path=options["rejected_file"],
                batch_size=options["batch_size"],
                resume=options["resume"],
                progress_file=None if options["no_progress"] else sys.stderr,
            ).run()
        except CsvImportError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            raise CommandError("interrupted; committed batches are kept: run again with --resume to continue") from None

        for note in result.notes:
            self.stderr.write(note)
        if result.already_complete:
            self.stdout.write(f"{options['file']} was already imported completely (checkpoint {result.checkpoint_file}).")
        elif result.resumed_from_line:
            self.stdout.write(f"resumed after line {result.resumed_from_line}")
        self.stdout.write(
            f"accepted {result.accepted}, duplicates {result.duplicates}, rejected {result.rejected} "
            f"(of {result.rows} rows)"
        )
        if result.rejected:
            self.stdout.write(f"rejected rows with line numbers and reasons: {result.rejected_file}")

    @staticmethod
    def _municipality(slug):
        if slug is None:
            return None
        try:
            return Municipality.objects.get(slug=slug)
        except Municipality.DoesNotExist:
            raise CommandError(f"--municipality {slug!r}: no such municipality") from None
