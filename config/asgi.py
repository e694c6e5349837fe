import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Before the settings load: an ASGI process serves each request in a thread of its own, where only a
# pool lets PostgreSQL connections outlive the request (config.settings, DATABASE_POOL).
os.environ.setdefault("DATABASE_POOL", "1")

import django  # noqa: E402

# Django must be set up before anything imports models.
django.setup(set_prefix=False)

from config.sync_paths import SyncPathsASGIHandler  # noqa: E402

django_asgi_app = SyncPathsASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from dashboard.routing import websocket_urlpatterns  # noqa: E402
from events.runner import InProcessDrain  # noqa: E402

from config.body_limit import RequestBodyLimit  # noqa: E402

# InProcessDrain runs the change-log drain inside this process when settings.EVENTS_DRAIN is
# "in-process" (the embedded default); otherwise it only passes requests through.
application = InProcessDrain(
    ProtocolTypeRouter(
        {
            "http": RequestBodyLimit(django_asgi_app),
            "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
