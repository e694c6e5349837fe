"""manage.py import_jma_xml PATH... | --feed [URL] [--loop]: JMA 防災情報XML reports from files,
directories or the agency's Atom feed."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events.loops import run_periodically
from jma.feed import jma_feed_poll
from jma.parser import MAX_BYTES, ReportError, parse_report
from jma.services import jma_report_apply


class Command(BaseCommand):
    help = (
        "Apply 気象警報・注意報 and 指定河川洪水予報 reports (防災情報XML) from files or directories (*.xml), "
        "oldest first, or from the Atom feed at --feed URL (default: JMA_FEED_URL), once or with --loop. "
        "Area codes map to towns by local government code. See docs/imports.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="*")
        parser.add_argument(
            "--feed", nargs="?", const="", default=None, metavar="URL",
            help="Read the Atom feed at URL (default: settings.JMA_FEED_URL); its hosts must be in "
            "OUTBOUND_ALLOWED_HOSTS.",
        )
        parser.add_argument("--loop", action="store_true", help="With --feed: keep polling every --interval seconds.")
        parser.add_argument("--interval", type=float, default=None,
                            help="Seconds between polls (default JMA_FEED_POLL_SECONDS, 60).")

    def handle(self, *args, paths, feed, loop, interval, **options):
        if feed is None:
            if loop:
                raise CommandError("--loop polls a feed: give --feed")
            if not paths:
                raise CommandError("give files or directories, or --feed")
            return self.import_files(paths)
        if paths:
            raise CommandError("give either files or --feed, not both")
        url = feed or settings.JMA_FEED_URL
        if not url:
            raise CommandError("no feed URL: give --feed URL or set JMA_FEED_URL")

        def poll():
            report = jma_feed_poll(url)
            if report.error:
                self.stderr.write(f"feed not read: {report.error}")
                return
            for line in report.applied:
                self.stdout.write(f"applied {line}")
            for line in report.refused:
                self.stderr.write(f"refused {line}")
            for line in report.failed:
                self.stderr.write(f"failed (tried again next time) {line}")
            self.stdout.write(
                f"{report.entries} warning document(s) listed, {report.already_seen} already dealt with, "
                f"{len(report.applied)} applied, {len(report.refused)} refused, {len(report.failed)} failed"
            )

        if not loop:
            return poll()
        run_periodically(poll, interval=interval or float(settings.JMA_FEED_POLL_SECONDS), loop=True,
                         name="import_jma_xml --feed")

    def import_files(self, paths):
        files: list[Path] = []
        for raw in paths:
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
