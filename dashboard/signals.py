"""Model signals the dashboard listens to. Connected in DashboardConfig.ready()."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from geo.models import Shelter

from . import live_geo


@receiver(post_save, sender=Shelter, dispatch_uid="dashboard.shelter_saved")
def shelter_saved(sender, instance: Shelter, raw: bool = False, **kwargs) -> None:
    """Every saved shelter reaches the live map: the HQ status endpoint, the admin, a seed.

    Bulk imports (geo.services, bulk_create / bulk_update) send no signal; what they change
    (names, places, capacities) shows on the next page load, and they never touch the status.
    """
    if raw:  # loaddata: fixtures are not news
        return
    live_geo.shelter_changed(instance.pk)
