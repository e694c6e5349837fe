"""System checks: the handlers the product cannot be trusted without are wired."""

from django.core.checks import Error, register

from . import registry

# Named, not imported: this app sits below every other and imports none of them.
REQUIRED_HANDLERS = {
    "station.changed": ("alerts.evaluate", "alert evaluation: readings would never raise an alert"),
}


@register()
def required_handlers_check(app_configs=None, **kwargs):
    errors = []
    for kind, (name, consequence) in REQUIRED_HANDLERS.items():
        handler = registry.get(name)
        if handler is None or kind not in handler.kinds:
            errors.append(
                Error(
                    f"No event handler {name!r} is registered for {kind!r}: {consequence}.",
                    hint="The alerts app registers it in AlertsConfig.ready(); keep 'alerts' in INSTALLED_APPS.",
                    id="events.E001",
                )
            )
    return errors
