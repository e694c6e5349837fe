"""manage.py export_shelter_dataset: shelters as the national standard 指定緊急避難場所一覧 CSV."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from geo.selectors import shelter_dataset_csv
from tenancy.models import Municipality


class Command(BaseCommand):
    help = "Write shelters (all, or one town's) as a 指定緊急避難場所一覧 CSV (UTF-8 with BOM) to stdout or --output."

    def add_arguments(self, parser):
        parser.add_argument("--municipality", metavar="SLUG")
        parser.add_argument("--output", "-o", metavar="FILE")

    def handle(self, *args, **options):
        municipality = None
        if options["municipality"]:
            municipality = Municipality.objects.filter(slug=options["municipality"]).first()
            if municipality is None:
                raise CommandError(f"--municipality {options['municipality']!r}: no such municipality")
        text = shelter_dataset_csv(municipality=municipality)
        if options["output"]:
            Path(options["output"]).write_text(text, encoding="utf-8", newline="")
        else:
            self.stdout.write(text, ending="")
