"""Usage metric owned by alerts (see tenancy.usage)."""

from django.db.models import Count

from .models import Alert


def alerts_per_town(start, end) -> dict[int, int]:
    """Alerts opened in the month on each owner town's stations."""
    rows = (
        Alert.objects.filter(opened_at__gte=start, opened_at__lt=end)
        .values("station__municipality_id")
        .annotate(n=Count("pk"))
    )
    return {row["station__municipality_id"]: row["n"] for row in rows}
