"""Usage metrics owned by sensors (see tenancy.usage)."""

from django.db.models import Count

from .models import Observation, Station


def stations_per_town(start, end) -> dict[int, int]:
    """Active stations each town owns (now: stations have no history of their own)."""
    rows = Station.objects.filter(is_active=True).values("municipality_id").annotate(n=Count("pk"))
    return {row["municipality_id"]: row["n"] for row in rows}


def readings_per_town(start, end) -> dict[int, int]:
    """Readings received in the month for each owner town's stations, whatever their observed time."""
    rows = (
        Observation.objects.filter(received_at__gte=start, received_at__lt=end)
        .values("station__municipality_id")
        .annotate(n=Count("pk"))
    )
    return {row["station__municipality_id"]: row["n"] for row in rows}
