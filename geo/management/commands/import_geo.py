"""manage.py import_geo FILE --layer ...: boundaries, basins, rivers, hazard zones, shelters (or a layer another
app registered, such as evacuation districts) from a geodata file."""

import sys

from django.core.management.base import BaseCommand, CommandError

from geo.importers import GeoImportError
from geo.models import HazardZone
from geo.services import GeoImportOptions, geo_layer_import, geo_layer_names
from tenancy.models import Municipality

PROBLEMS_LISTED = 50


class Command(BaseCommand):
    help = (
        "Import one layer of a GeoJSON, GeoPackage or Shapefile (any CRS; converted to WGS84). Invalid "
        "features are reported and skipped; everything else is written in one transaction, updating what "
        "an earlier import of the same data stored. See docs/imports.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="GeoJSON, GeoPackage (.gpkg) or Shapefile (.shp with its .dbf/.shx/.prj).")
        parser.add_argument("--layer", required=True, choices=geo_layer_names(), help="What the features are.")
        parser.add_argument(
            "--municipality",
            metavar="SLUG",
            help="Owner town: boundaries (all features, or only this town's), hazard zones, shelters, districts "
            "(default for shelters and districts: the town whose boundary contains each one).",
        )
        parser.add_argument("--name-field", metavar="F", help="Attribute with the Japanese name (default: name_ja, name, 名称).")
        parser.add_argument("--name-en-field", metavar="F", help="Attribute with the English name (default: name_en).")
        parser.add_argument(
            "--code-field", metavar="F", help="Shelter or district code, or a boundary's local government code (default: code)."
        )
        parser.add_argument("--capacity-field", metavar="F", help="Shelter capacity in people (default: capacity, 収容人数).")
        parser.add_argument("--address-field", metavar="F", help="Shelter address (default: address, 住所).")
        parser.add_argument("--depth-min-field", metavar="F", help="Hazard zone depth band, lower bound in m.")
        parser.add_argument("--depth-max-field", metavar="F", help="Hazard zone depth band, upper bound in m.")
        parser.add_argument(
            "--kind", choices=HazardZone.Kind.values, default=HazardZone.Kind.INUNDATION, help="Hazard zone kind."
        )
        parser.add_argument("--source-layer", metavar="L", help="Layer to read from a multi-layer file (GeoPackage).")
        parser.add_argument(
            "--assume-crs", metavar="EPSG:XXXX", help="CRS of a file that declares none (e.g. a Shapefile without .prj)."
        )
        parser.add_argument(
            "--encoding", metavar="ENC",
            help="Text encoding of a Shapefile's attributes (e.g. CP932). Default: its .cpg; without one, "
            "UTF-8 or else CP932, whichever reads.",
        )
        parser.add_argument("--fix", action="store_true", help="Repair invalid geometries with shapely.make_valid.")
        parser.add_argument("--dry-run", action="store_true", help="Check and report, store nothing.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, **options):
        options_for_import = GeoImportOptions(
            layer=options["layer"],
            municipality=self._municipality(options["municipality"]),
            name_field=options["name_field"],
            name_en_field=options["name_en_field"],
            code_field=options["code_field"],
            capacity_field=options["capacity_field"],
            address_field=options["address_field"],
            depth_min_field=options["depth_min_field"],
            depth_max_field=options["depth_max_field"],
            hazard_kind=options["kind"],
            source_layer=options["source_layer"],
            assume_crs=options["assume_crs"],
            encoding=options["encoding"],
            fix=options["fix"],
            dry_run=options["dry_run"],
        )
        try:
            report = geo_layer_import(
                options["file"], options_for_import, progress_file=None if options["no_progress"] else sys.stderr
            )
        except GeoImportError as exc:
            raise CommandError(str(exc)) from exc

        for problem in report.problems[:PROBLEMS_LISTED]:
            self.stderr.write(f"skipped {problem}")
        if len(report.problems) > PROBLEMS_LISTED:
            self.stderr.write(f"... and {len(report.problems) - PROBLEMS_LISTED} more skipped")
        for problem in report.repaired:
            self.stderr.write(f"repaired {problem}")
        prefix = "dry run, nothing stored: would have " if report.dry_run else ""
        self.stdout.write(
            f"{prefix}{report.layer}: {report.created} created, {report.updated} updated, "
            f"{len(report.problems)} feature(s) skipped, of {report.features} (from {report.source_crs}"
            f"{f', text read as {report.encoding}' if report.encoding else ''})"
        )

    @staticmethod
    def _municipality(slug):
        if slug is None:
            return None
        try:
            return Municipality.objects.get(slug=slug)
        except Municipality.DoesNotExist:
            raise CommandError(f"--municipality {slug!r}: no such municipality") from None
