"""URL map: pages per role, the REST API under /api/, the admin, sign-in.

Static files are served by Django itself (`staticfiles.views.serve`, finders): AEGIS is a
small air-gapped app behind one daphne, with a handful of CSS/JS files and no CDN; a site
with a front proxy may serve STATIC_ROOT (`manage.py collectstatic`) from it instead.
"""

from pathlib import Path

import drf_spectacular_sidecar
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.views import serve as static_serve
from django.urls import include, path, re_path
from django.views.generic import TemplateView
from django.views.static import serve as file_serve

from aegis_base.api.views import SchemaView
from aegis_base.login_limit import LimitedAdminAuthenticationForm, LimitedLoginView
from evidence.api.urls import urlpatterns as evidence_api
from preflight import views as preflight_views
from preflight.api.urls import urlpatterns as preflight_api
from promote.api.urls import urlpatterns as promote_api

# The admin's sign-in counts failures and refuses while locked, as /accounts/login/ does.
admin.site.login_form = LimitedAdminAuthenticationForm

SWAGGER_DIST = (
    Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar" / "swagger-ui-dist"
)

api_patterns = [
    *preflight_api,
    *evidence_api,
    *promote_api,
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", TemplateView.as_view(template_name="aegis/api_docs.html"), name="docs"),
    # Swagger UI's own files, from the drf-spectacular-sidecar package: no CDN (air-gapped).
    re_path(
        r"^docs/assets/(?P<path>[\w.-]+)$", file_serve, {"document_root": SWAGGER_DIST}, name="docs_assets"
    ),
]

urlpatterns = [
    path("", preflight_views.home, name="home"),
    path("admin/", admin.site.urls),
    path("accounts/login/", LimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/accounts/login/"), name="logout"),
    path("preflight", preflight_views.start),  # the documented address, without the slash
    path("preflight/", include("preflight.urls")),
    path("promote/", include("promote.urls")),
    path("evidence/", include("evidence.urls")),
    path("api/", include((api_patterns, "api"))),
    re_path(r"^static/(?P<path>.*)$", static_serve, {"insecure": True}),
]

# A database or Redis outage anywhere in a request (a middleware too) is a 503, not a 500.
handler500 = "aegis_site.unavailable.server_error"
