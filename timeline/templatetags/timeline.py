from django import template
from django.utils import timezone

from tenancy.selectors import viewer_for_request

from ..selectors import hq_overview as overview_of

register = template.Library()


@register.inclusion_tag("timeline/_hq_overview.html", takes_context=True)
def hq_overview(context):
    """The HQ overview, rendered where the HQ page includes it (the page's own view stays untouched)."""
    return {"overview": overview_of(viewer=viewer_for_request(context["request"]), now=timezone.now()),
            "LANGUAGE_CODE": context.get("LANGUAGE_CODE")}
