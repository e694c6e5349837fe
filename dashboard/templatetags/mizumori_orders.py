"""`{% public_orders %}` and `{% hq_orders %}`: the evacuation-order sections of the map pages, so the
pages' views need no change (dashboard.orders_page builds their data)."""

from django import template

from config.i18n import localized
from tenancy.selectors import ANONYMOUS, viewer_for_request

from ..maps import shelter_status_style
from ..orders_page import hq_orders_board, orders_page_data

register = template.Library()


@register.inclusion_tag("orders/_public.html", takes_context=True)
def public_orders(context):
    # The public page is the public view, whoever is logged in (as dashboard.views.public_map).
    return {"orders_data": orders_page_data(ANONYMOUS), "LANGUAGE_CODE": context.get("LANGUAGE_CODE"), "hq": False}


@register.inclusion_tag("orders/_public.html", takes_context=True)
def hq_orders(context):
    request = context["request"]
    viewer = viewer_for_request(request)
    return {
        "orders_data": orders_page_data(viewer),
        "board": hq_orders_board(viewer, request.user.get_username() if request.user.is_authenticated else ""),
        "LANGUAGE_CODE": context.get("LANGUAGE_CODE"),
        "hq": True,
        "csrf_token": context.get("csrf_token"),
    }


@register.filter
def shelter_status_words(status: str) -> str:
    """A shelter's status ("open") in the page's language, as its marker says it (開設中 / Open)."""
    return localized(shelter_status_style(status), "name")
