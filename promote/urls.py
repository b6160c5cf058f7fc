from django.urls import path

from promote import views

app_name = "promote"

urlpatterns = [
    path("queue/", views.queue, name="queue"),
    path("runs/<str:run_id>/", views.decide, name="decide"),
]
