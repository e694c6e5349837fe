from django.core.management.base import BaseCommand, CommandError

from tenancy.models import IngestToken
from tenancy.services import ingest_token_revoke


class Command(BaseCommand):
    help = "Revoke a gateway token by its prefix (as listed in the admin) or by the full token."

    def add_arguments(self, parser):
        parser.add_argument("token", help="the token's prefix (e.g. mzm_AbCdEfGh) or the whole token")

    def handle(self, *args, token, **options):
        matches = list(IngestToken.objects.filter(digest=IngestToken.digest_of(token))) or list(
            IngestToken.objects.filter(prefix=token, revoked_at__isnull=True)
        )
        if not matches:
            raise CommandError("No active token matches.")
        if len(matches) > 1:
            raise CommandError("Several tokens share that prefix; give the whole token or revoke in the admin.")
        revoked = ingest_token_revoke(token=matches[0])
        self.stdout.write(f"Revoked {revoked.prefix}… of {revoked.municipality.slug}.")
