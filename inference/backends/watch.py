"""A list-then-watch cache of one kind of Kubernetes object, kept by a background thread.

The orchestrator reads this cache on every pass instead of listing, so that a steady-state pass
costs no API call at all (KubeSpawner's reflector is the model). It follows the API's contract:
list, then watch from the list's resourceVersion with bookmarks; a watch that ends is resumed
from the last version seen; `410 Gone` (as an ERROR event or an ApiException) means the version
is too old, so it lists again. Both a server-side `timeout_seconds` and a client-side read timeout
are set, because a watch over a dead connection can otherwise hang forever.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

logger = logging.getLogger(__name__)

Object = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
# A generated `list_*` method of the official client (CoreV1Api.list_pod_for_all_namespaces …).
ListFunction = Callable[..., Any]

HTTP_GONE = 410


class WatchExpired(Exception):
    """The resourceVersion we watch from is older than the server keeps: list again."""


def key_of(obj: Object) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class Reflector:
    """Keeps `objects` equal to what the server has for one resource and label selector.

    `on_call(verb)` is told of every request ("list" or "watch") so that the owner can count them;
    `on_delete(obj)` of every object that disappeared (from a DELETED event or a relist).
    """

    def __init__(
        self,
        kind: str,
        list_function: ListFunction,
        *,
        label_selector: str,
        on_call: Callable[[str], None],
        on_delete: Callable[[Object], None] | None = None,
        watch_timeout_s: int = 300,
        connect_timeout_s: float = 10.0,
        read_grace_s: float = 15.0,
        retry_backoff_s: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self.kind = kind
        self._list = list_function
        self._selector = label_selector
        self._on_call = on_call
        self._on_delete = on_delete
        self._watch_timeout_s = watch_timeout_s
        self._request_timeout = (connect_timeout_s, watch_timeout_s + read_grace_s)
        self._list_timeout = (connect_timeout_s, 60.0)
        self._backoff = retry_backoff_s
        self._lock = threading.Lock()
        self._objects: dict[Key, Object] = {}
        self._deleted_uids: collections.deque[str] = collections.deque(maxlen=1024)
        self._resource_version = ""
        self._stopping = threading.Event()
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self.healthy = False  # the last list succeeded and no error happened since
        self.last_error = ""
        self.generation = 0  # bumped on every change, so that readers can skip rebuilding
        self.lists = 0
        self.watches = 0

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self) -> list[Object]:
        with self._lock:
            return list(self._objects.values())

    def get(self, key: Key) -> Object | None:
        with self._lock:
            return self._objects.get(key)

    def remember(self, obj: Object) -> None:
        """Write-through of an object this process just created, so that a reader does not
        miss it before its ADDED event arrives; the watch's version replaces it later."""
        uid = (obj.get("metadata") or {}).get("uid")
        with self._lock:
            if uid in self._deleted_uids or key_of(obj) in self._objects:
                return
            self._objects[key_of(obj)] = obj
            self.generation += 1

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"ironbowl-reflector-{self.kind}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        deadline = time.monotonic() + timeout
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            # Again and again: the watch request may not have returned its response yet.
            self._abort_response()
            thread.join(0.02)

    def _abort_response(self) -> None:
        # Unblocks a thread waiting in a socket read of the watch stream.
        response = self._response
        if response is None:
            return
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._relist()
                failures = 0
                while not self._stopping.is_set():
                    self._watch_once()
            except WatchExpired:
                logger.info("%s watch expired (410 Gone); listing again", self.kind)
                continue
            except ApiException as error:
                if error.status == HTTP_GONE:
                    logger.info("%s watch expired (410 Gone); listing again", self.kind)
                    continue
                failures += 1
                self._failed(f"{error.status} {error.reason}")
            except Exception as error:  # a broken connection must never end the loop
                failures += 1
                self._failed(f"{type(error).__name__}: {error}")
            if failures:
                delay = min(self._backoff[0] * 2 ** (failures - 1), self._backoff[1])
                self._stopping.wait(delay)

    def _failed(self, message: str) -> None:
        if self._stopping.is_set():
            return
        self.healthy = False
        self.last_error = message
        logger.warning("%s reflector: %s", self.kind, message)

    def _relist(self) -> None:
        self._on_call("list")
        self.lists += 1
        response = self._list(
            label_selector=self._selector,
            _preload_content=False,
            _request_timeout=self._list_timeout,
        )
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        fresh = {key_of(obj): obj for obj in body.get("items") or []}
        # The owner hears of a deletion before readers can see the object gone.
        for obj in [obj for key, obj in self._objects.items() if key not in fresh]:
            self._deleted(obj)
        with self._lock:
            self._objects = fresh
            self._resource_version = str(body["metadata"].get("resourceVersion") or "")
            self.generation += 1
        self.healthy = True
        self.last_error = ""
        self._synced.set()

    def _watch_once(self) -> None:
        self._on_call("watch")
        self.watches += 1
        response = self._list(
            label_selector=self._selector,
            watch=True,
            resource_version=self._resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self._watch_timeout_s,
            _preload_content=False,
            _request_timeout=self._request_timeout,
        )
        self._response = response
        started, events = time.monotonic(), 0
        try:
            if self._stopping.is_set():
                return
            for event in self._events(response):
                events += 1
                self._apply(event)
                if self._stopping.is_set():
                    return
        except urllib3.exceptions.ProtocolError:
            # The server closed the stream mid-chunk: resume from the last version seen (a dead
            # server then fails the next watch request, and that goes through the backoff).
            pass
        finally:
            self._response = None
            response.close()
            response.release_conn()
        if not events and time.monotonic() - started < self._backoff[0]:
            # A server that ends every watch at once must not turn this loop into a busy one.
            self._stopping.wait(self._backoff[0])

    @staticmethod
    def _events(response: Any) -> Iterator[Object]:
        for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
            if line.strip():
                event: Object = json.loads(line)
                yield event

    def _apply(self, event: Object) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == HTTP_GONE:
                raise WatchExpired(obj.get("message", ""))
            raise ApiException(status=code, reason=f"{obj.get('reason')}: {obj.get('message')}")
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            # Only the version matters; the object of a bookmark is otherwise empty.
            if version:
                self._resource_version = version
            return
        key = key_of(obj)
        if kind == "DELETED":
            self._deleted(obj)  # before readers can see it gone
        with self._lock:
            if kind == "DELETED":
                self._objects.pop(key, None)
                self._deleted_uids.append(str((obj.get("metadata") or {}).get("uid")))
            elif kind in ("ADDED", "MODIFIED"):
                self._objects[key] = obj
            if version:
                self._resource_version = version
            self.generation += 1

    def _deleted(self, obj: Object) -> None:
        if self._on_delete is None:
            return
        try:
            self._on_delete(obj)
        except Exception:  # the owner's bookkeeping must not stop the watch
            logger.exception("%s reflector: on_delete failed", self.kind)
