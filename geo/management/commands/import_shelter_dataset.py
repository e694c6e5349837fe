"""manage.py import_shelter_dataset FILE: shelters from the national standard 指定緊急避難場所一覧 CSV."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from geo.shelter_dataset import MAX_BYTES, DatasetError
from geo.services import shelter_dataset_import
from tenancy.models import Municipality


class Command(BaseCommand):
    help = (
        "Import 指定緊急避難場所 from a CSV in the 自治体標準オープンデータセット layout (Japanese column names, "
        "災害種別 flags). Creates or updates by town code + ID; never changes a shelter's open/closed status. "
        "Prints a per-row report of what was left out or not mapped. See docs/imports.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--municipality", metavar="SLUG",
                            help="Only this town's rows; the owner of rows without 全国地方公共団体コード.")
        parser.add_argument("--encoding", help="Text encoding (default: UTF-8, else CP932).")
        parser.add_argument("--dry-run", action="store_true", help="Check and report, store nothing.")
        parser.add_argument("--json", action="store_true", help="The report as JSON on stdout.")

    def handle(self, *args, **options):
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if path.stat().st_size > MAX_BYTES:
            raise CommandError(f"{path}: larger than {MAX_BYTES // (1024 * 1024)} MiB")
        municipality = None
        if options["municipality"]:
            municipality = Municipality.objects.filter(slug=options["municipality"]).first()
            if municipality is None:
                raise CommandError(f"--municipality {options['municipality']!r}: no such municipality")
        try:
            report = shelter_dataset_import(
                data=path.read_bytes(), municipality=municipality, encoding=options["encoding"],
                dry_run=options["dry_run"],
            )
        except DatasetError as exc:
            raise CommandError(f"{path}: {exc}") from None
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=1))
            return
        if report.unmapped_columns:
            self.stderr.write(f"columns not mapped (ignored): {', '.join(report.unmapped_columns)}")
        for row in report.reports:
            if row.error:
                self.stderr.write(f"line {row.line}: skipped: {row.error}")
            for note in row.notes:
                self.stderr.write(f"line {row.line}: {note}")
        prefix = "dry run, nothing stored: would have " if report.dry_run else ""
        skipped = sum(1 for row in report.reports if row.error)
        self.stdout.write(
            f"{prefix}shelters: {report.created} created, {report.updated} updated, {skipped} row(s) skipped, "
            f"of {report.rows} (text read as {report.encoding})"
        )
