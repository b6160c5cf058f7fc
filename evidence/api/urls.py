from django.urls import path

from evidence.api import views

urlpatterns = [
    path("bundles", views.BundleListView.as_view(), name="bundles"),
    path("bundles/<str:bundle_id>", views.BundleDetailView.as_view(), name="bundle"),
    path(
        "bundles/<str:bundle_id>/json",
        views.BundleJsonView.as_view(),
        {"kind": "json"},
        name="bundle_json",
    ),
    path(
        "bundles/<str:bundle_id>/pdf", views.BundlePdfView.as_view(), {"kind": "pdf"}, name="bundle_pdf"
    ),
    path("bundles/<str:bundle_id>/verify", views.BundleVerifyView.as_view(), name="bundle_verify"),
]
