from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Tenancy (municipalities, members, tokens)"

    def ready(self):
        from . import signals  # noqa: F401  (connects the audit receivers)
