from django.urls import path

from preflight import views

app_name = "preflight"

urlpatterns = [
    path("", views.start, name="start"),
    path("runs/<str:run_id>/", views.run_detail, name="run"),
    path("runs/<str:run_id>/result.json", views.run_result_json, name="run_result"),
    path("runs/<str:run_id>/bundle.json", views.run_download, {"kind": "bundle"}, name="run_bundle"),
    path("runs/<str:run_id>/report.pdf", views.run_download, {"kind": "pdf"}, name="run_pdf"),
]
