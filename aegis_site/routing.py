"""Websocket routes. Each app that streams adds its patterns here."""

websocket_urlpatterns: list = []
