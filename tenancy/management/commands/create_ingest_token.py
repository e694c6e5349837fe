from django.core.management.base import BaseCommand, CommandError

from tenancy.models import Municipality
from tenancy.services import ingest_token_create


class Command(BaseCommand):
    help = "Create a bearer token for a sensor gateway of one municipality. The token is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("municipality", help="the municipality's slug")
        parser.add_argument("--label", default="", help="what the token is for, e.g. the gateway's name")

    def handle(self, *args, municipality, label, **options):
        try:
            town = Municipality.objects.get(slug=municipality)
        except Municipality.DoesNotExist:
            raise CommandError(f"No municipality with slug {municipality!r}.") from None
        token, secret = ingest_token_create(municipality=town, label=label)
        self.stdout.write(f"Created token {token.prefix}… for {town.slug}" + (f" ({label})" if label else ""))
        self.stdout.write("Store it now: it cannot be shown again.")
        self.stdout.write(secret)
