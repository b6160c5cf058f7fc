from django.urls import path

from promote import views

app_name = "promote"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("runs/<str:run_id>/", views.decide, name="decide"),
    path("bundles/<str:bundle_id>/promote", views.promotion_start, name="promote"),
    path("promotions/<str:record_id>/", views.promotion_detail, name="promotion"),
    path("promotions/<str:record_id>/record.json", views.promotion_json, name="promotion_json"),
    path("approvals/<str:approval_id>/approval.json", views.approval_json, name="approval_json"),
]
