"""Websocket routes.

Members' sockets authenticate with the console's session cookie, so they are checked against
the allowed hosts' origins (a cookie would otherwise ride along from any site). Conversation
sockets carry their own credentials instead — a visitor's signed session token, a worker's
token — and a visitor's widget is embedded on the organization's own site, so those routes take
any origin.
"""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from inference.consumers import VisitorSessionConsumer, WorkerSessionConsumer
from ironbowl.console.consumers import BoardConsumer
from ironbowl.realtime import ActivityConsumer

member_urlpatterns = [  # under ws/orgs/
    path("<slug:org>/activity/", ActivityConsumer.as_asgi()),
]

console_urlpatterns = [  # under ws/console/orgs/
    path("<slug:org>/board/", BoardConsumer.as_asgi()),
]

token_urlpatterns = [
    path("ws/sessions/", VisitorSessionConsumer.as_asgi()),
    path(
        "ws/inference/worker/sessions/<uuid:workload>/",
        WorkerSessionConsumer.as_asgi(),
    ),
]

websocket_application = URLRouter(
    [
        *token_urlpatterns,
        re_path(  # a regular expression without "$" matches the prefix
            r"^ws/orgs/",
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(member_urlpatterns))),
        ),
        re_path(
            r"^ws/console/orgs/",
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(console_urlpatterns))),
        ),
    ]
)
