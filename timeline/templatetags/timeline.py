from django import template
from django.utils import timezone

from tenancy.selectors import viewer_for_request

from ..selectors import hq_overview as overview_of

register = template.Library()


@register.inclusion_tag("timeline/_hq_overview.html", takes_context=True)
def hq_overview(context):
    """The HQ overview, rendered where the HQ page includes it (the page's own view stays untouched);
    the alert board and shelters the page read already (dashboard.views.map_page_context) are
    counted, not read again."""
    shelters = context.get("shelters")
    overview = overview_of(
        viewer=viewer_for_request(context["request"]), now=timezone.now(), board=context.get("alert_board"),
        shelters=None if shelters is None else [shelter for shelter, _ in shelters],
    )
    return {"overview": overview, "LANGUAGE_CODE": context.get("LANGUAGE_CODE")}
