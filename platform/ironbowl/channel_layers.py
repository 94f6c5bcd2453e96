"""The Redis channel layer's settings, shared by the settings module and the tests."""

from __future__ import annotations

from typing import Any


def redis_channel_layer(redis_url: str, prefix: str = "asgi") -> dict[str, Any]:
    """channels-redis on `redis_url`. A consumer waits for messages with a blocking pop of up
    to five seconds; redis-py 8 reads with a 5 s socket timeout by default, which cut such
    waits and closed every idle websocket (channels_redis#422), so reads have no client-side
    timeout (the server's blocking timeout bounds them). Over-capacity sends are dropped:
    pushes are hints the client re-fetches, and conversations stay far below the capacity."""
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": redis_url, "socket_timeout": None}],
            "capacity": 500,
            "expiry": 30,
            "prefix": prefix,
        },
    }
