from django.apps import AppConfig


class PublicConfig(AppConfig):
    name = "public"
    verbose_name = "Public page (cacheable shell and snapshot)"

    def ready(self):
        from .snapshot import register_builtin_sections

        register_builtin_sections()
