"""Websocket routes. Each app that streams adds its patterns here."""

from django.urls import path

from preflight.consumers import RunProgressConsumer

websocket_urlpatterns: list = [
    path("ws/runs/<str:run_id>/", RunProgressConsumer.as_asgi()),
]
