from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GeoConfig(AppConfig):
    name = "geo"
    verbose_name = _("Geography (boundaries, basins, map)")

    def ready(self):
        from tenancy import permissions

        from .models import Shelter

        # Shelters are public information: anyone sees them; only their town runs them.
        permissions.register(Shelter, owner="municipality")
