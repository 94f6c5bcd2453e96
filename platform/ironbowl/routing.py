"""Websocket routes."""

from django.urls import path

from ironbowl.realtime import ActivityConsumer

websocket_urlpatterns = [
    path("ws/orgs/<slug:org>/activity/", ActivityConsumer.as_asgi()),
]
