from django.urls import path

from preflight.api import views

urlpatterns = [
    path("preflight/run", views.RunSubmitView.as_view(), name="run_submit"),
    path("runs", views.RunListView.as_view(), name="runs"),
    path("runs/<str:run_id>", views.RunDetailView.as_view(), name="run"),
    path("runs/<str:run_id>/events", views.RunEventsView.as_view(), name="run_events"),
    path("runs/<str:run_id>/result", views.RunResultView.as_view(), name="run_result"),
]
