"""manage.py import_jma_xml PATH...: JMA 防災情報XML reports from files or directories."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jma.parser import MAX_BYTES, ReportError, parse_report
from jma.services import jma_report_apply


class Command(BaseCommand):
    help = (
        "Apply 気象警報・注意報 and 指定河川洪水予報 reports (防災情報XML) from files or directories (*.xml), "
        "oldest first. Area codes map to towns by local government code. See docs/imports.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+")

    def handle(self, *args, **options):
        files: list[Path] = []
        for raw in options["paths"]:
            path = Path(raw)
            if path.is_dir():
                files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() == ".xml" and p.is_file()))
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{path}: no such file or directory")
        reports = []
        for path in files:
            if path.stat().st_size > MAX_BYTES:
                self.stderr.write(f"{path.name}: skipped: larger than {MAX_BYTES // (1024 * 1024)} MiB")
                continue
            try:
                reports.append((path, parse_report(path.read_bytes())))
            except ReportError as exc:
                self.stderr.write(f"{path.name}: skipped: {exc}")
        applied = 0
        for path, report in sorted(reports, key=lambda pair: pair[1].reported_at):
            result = jma_report_apply(report)
            applied += 1
            if result.unknown_areas:
                self.stderr.write(f"{path.name}: areas of no town here: {', '.join(sorted(set(result.unknown_areas))[:20])}")
            self.stdout.write(f"{path.name}: {report.title}: {', '.join(result.towns) or 'no town here'}")
        self.stdout.write(f"{applied} report(s) applied, {len(files) - applied} skipped")
