from django.urls import path

from promote.api import views

urlpatterns = [
    path("runs/<str:run_id>/approvals", views.RunApprovalsView.as_view(), name="run_approvals"),
    path("approvals/queue", views.ApprovalQueueView.as_view(), name="approval_queue"),
    path("bundles/<str:bundle_id>/promote", views.BundlePromoteView.as_view(), name="bundle_promote"),
    path("promotions/<str:record_id>", views.PromotionDetailView.as_view(), name="promotion"),
    path("promotions/<str:record_id>/json", views.PromotionJsonView.as_view(), name="promotion_json"),
    path(
        "approvals/<str:approval_id>/approval.json",
        views.ApprovalEnvelopeView.as_view(),
        name="approval_json",
    ),
]
