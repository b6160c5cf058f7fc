from django.urls import path

from evidence import views

app_name = "evidence"

urlpatterns = [
    path("bundles/", views.bundle_list, name="bundles"),
    path("bundles/<str:bundle_id>/", views.bundle_detail, name="bundle"),
    path("bundles/<str:bundle_id>/bundle.json", views.bundle_download, {"kind": "json"}, name="bundle_json"),
    path("bundles/<str:bundle_id>/report.pdf", views.bundle_download, {"kind": "pdf"}, name="bundle_pdf"),
]
