from django.apps import AppConfig


class GeoConfig(AppConfig):
    name = "geo"
    verbose_name = "Geography (boundaries, basins, map)"

    def ready(self):
        from tenancy import permissions

        from .models import Shelter

        # Shelters are public information: anyone sees them; only their town runs them.
        permissions.register(Shelter, owner="municipality")
