"""ASGI entry point: HTTP through Django, websockets through Channels (run progress).

HTTP runs Django's sync handler in one thread per request (aegis_site/asgi_http.py), not
Django's ASGI handler: every view and middleware here is synchronous, and the ASGI handler's
sync/async hand-offs cost about a fifth of a page's CPU.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aegis_site.settings")
django.setup(set_prefix=False)

from aegis_site.asgi_http import DjangoHTTP  # noqa: E402  (needs settings)

django_asgi_app = DjangoHTTP()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the app registry)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from aegis_site.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
