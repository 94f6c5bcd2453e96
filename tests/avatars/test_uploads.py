"""Resumable chunked uploads through the API: resume after a dropped connection, retries, gaps,
checksums, types and sizes, the chunk body limit, and other organizations.

Nothing is simulated but the network: a "dropped connection" is a chunk that never arrived, or one
whose body arrived cut short (fewer bytes than its Content-Range announces); a "lost answer" is a
chunk sent again after it was stored.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest
from django.db import connection

from avatars import uploads as upload_services
from avatars.models import Upload
from tenants.models import AuditEntry
from tests.avatars import media
from tests.avatars.media import media_root  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("media_root")

MB = 1024 * 1024


def _url(org, upload_id=None, suffix=""):
    base = f"/api/v1/orgs/{org.slug}/uploads/"
    return base if upload_id is None else f"{base}{upload_id}/{suffix}"


def start(client, org, **fields):
    body = {
        "purpose": "document",
        "filename": "notes.txt",
        "content_type": "text/plain",
        "size": 1000,
        **fields,
    }
    return client.post(_url(org), body, format="json")


def put_chunk(client, org, upload_id, data: bytes, start_at: int, total: int, announce=None):
    end = start_at + (announce if announce is not None else len(data)) - 1
    return client.generic(
        "PUT",
        _url(org, upload_id),
        data,
        content_type="application/octet-stream",
        HTTP_CONTENT_RANGE=f"bytes {start_at}-{end}/{total}",
    )


def complete(client, org, upload_id, sha256=None):
    body = {} if sha256 is None else {"sha256": sha256}
    return client.post(_url(org, upload_id, "complete/"), body, format="json")


def stored_bytes(upload_id) -> bytes:
    upload = Upload.objects.unscoped_dangerously().get(pk=upload_id)
    return upload_services.path_of(upload).read_bytes()


def test_footage_survives_a_dropped_connection_and_resumes_where_it_stopped(api_a, org_a):
    footage = media.media_file(media.VALID_FOOTAGE)
    content = footage.read_bytes()
    chunk = 4 * MB
    created = start(
        api_a,
        org_a,
        purpose="footage",
        filename="anchor.mp4",
        content_type="video/mp4",
        size=len(content),
    )
    assert created.status_code == 201, created.content
    upload_id = created.json()["id"]
    assert created.json()["received"] == 0
    assert created.json()["status"] == "receiving"

    first = put_chunk(api_a, org_a, upload_id, content[:chunk], 0, len(content))
    assert first.status_code == 200, first.content
    assert first.json()["received"] == chunk
    # The connection drops halfway through the second chunk: part of its body arrived.
    cut = put_chunk(
        api_a, org_a, upload_id, content[chunk : chunk + MB], chunk, len(content), announce=chunk
    )
    assert cut.status_code == 400
    assert cut.json()["code"] == "chunk_length_mismatch"

    # The client comes back, asks how far the upload got, and resumes from there.
    state = api_a.get(_url(org_a, upload_id))
    assert state.json()["received"] == chunk
    offset = state.json()["received"]
    while offset < len(content):
        piece = content[offset : offset + chunk]
        response = put_chunk(api_a, org_a, upload_id, piece, offset, len(content))
        assert response.status_code == 200, response.content
        offset = response.json()["received"]

    done = complete(api_a, org_a, upload_id, hashlib.sha256(content).hexdigest())

    assert done.status_code == 200, done.content
    body = done.json()
    assert body["status"] == "complete"
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert stored_bytes(upload_id) == content
    info = body["media_info"]
    assert (info["width"], info["height"], info["fps"]) == (1280, 720, 15.0)
    assert info["duration_s"] == pytest.approx(120, abs=0.5)
    assert info["has_audio"] is True
    assert info["problems"] == []
    assert AuditEntry.objects.for_organization(org_a).filter(action="upload.complete").exists()


def test_a_chunk_sent_again_after_its_answer_was_lost_is_not_stored_twice(api_a, org_a):
    content = bytes(range(256)) * 4  # 1024 bytes
    upload_id = start(api_a, org_a, size=len(content)).json()["id"]
    put_chunk(api_a, org_a, upload_id, content[:400], 0, len(content))

    again = put_chunk(api_a, org_a, upload_id, content[:400], 0, len(content))
    # A retry that reaches past what arrived stores only the new part.
    overlapping = put_chunk(api_a, org_a, upload_id, content[200:700], 200, len(content))

    assert again.status_code == 200
    assert again.json()["received"] == 400
    assert overlapping.status_code == 200
    assert overlapping.json()["received"] == 700
    assert stored_bytes(upload_id) == content[:700]


def test_a_chunk_that_would_leave_a_gap_is_refused_with_the_offset_to_resume_from(api_a, org_a):
    content = b"x" * 1000
    upload_id = start(api_a, org_a).json()["id"]
    put_chunk(api_a, org_a, upload_id, content[:300], 0, 1000)

    response = put_chunk(api_a, org_a, upload_id, content[500:800], 500, 1000)

    assert response.status_code == 409
    assert response.json()["code"] == "upload_offset_mismatch"
    assert "starts at byte 300" in response.json()["detail"]
    assert len(stored_bytes(upload_id)) == 300
    assert api_a.get(_url(org_a, upload_id)).json()["received"] == 300


def test_a_wrong_checksum_fails_the_upload_and_says_to_start_again(api_a, org_a):
    content = b"hello world\n" * 50
    upload_id = start(api_a, org_a, size=len(content)).json()["id"]
    put_chunk(api_a, org_a, upload_id, content, 0, len(content))

    response = complete(api_a, org_a, upload_id, "0" * 64)

    assert response.status_code == 400
    assert response.json()["code"] == "checksum_mismatch"
    assert "Start a new upload" in response.json()["detail"]
    state = api_a.get(_url(org_a, upload_id)).json()
    assert state["status"] == "failed"
    assert hashlib.sha256(content).hexdigest() in state["failure_reason"]
    upload = Upload.objects.for_organization(org_a).get(pk=upload_id)
    assert not upload_services.path_of(upload).exists()
    refused = put_chunk(api_a, org_a, upload_id, content, 0, len(content))
    assert refused.status_code == 409
    assert refused.json()["code"] == "upload_failed"


def test_a_checksum_given_at_the_start_is_checked_and_cannot_be_contradicted(api_a, org_a):
    content = b"abc" * 100
    digest = hashlib.sha256(content).hexdigest()
    upload_id = start(api_a, org_a, size=len(content), sha256=digest.upper()).json()["id"]
    put_chunk(api_a, org_a, upload_id, content, 0, len(content))

    contradiction = complete(api_a, org_a, upload_id, "f" * 64)
    assert contradiction.status_code == 400
    assert contradiction.json()["code"] == "checksum_conflict"
    assert api_a.get(_url(org_a, upload_id)).json()["status"] == "receiving"

    done = complete(api_a, org_a, upload_id)
    again = complete(api_a, org_a, upload_id, digest)  # the first answer was lost

    assert done.status_code == 200, done.content
    assert done.json()["status"] == "complete"
    assert again.status_code == 200
    assert again.json()["completed_at"] == done.json()["completed_at"]


def test_completing_before_every_byte_arrived_says_where_to_continue(api_a, org_a):
    upload_id = start(api_a, org_a).json()["id"]
    put_chunk(api_a, org_a, upload_id, b"y" * 600, 0, 1000)

    response = complete(api_a, org_a, upload_id, "a" * 64)

    assert response.status_code == 409
    assert response.json()["code"] == "upload_incomplete"
    assert "600 of 1000 bytes" in response.json()["detail"]
    assert api_a.get(_url(org_a, upload_id)).json()["status"] == "receiving"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"purpose": "footage", "filename": "notes.txt", "content_type": "text/plain"},
            "content_type",
            "this file is text/plain",
        ),
        (
            {"purpose": "footage", "filename": "anchor.avi", "content_type": "video/mp4"},
            "filename",
            "A video/mp4 file's name ends in .mp4 or .m4v",
        ),
        (
            {"purpose": "portrait", "filename": "me.gif", "content_type": "image/gif"},
            "content_type",
            "image/jpeg, image/png",
        ),
        (
            {
                "purpose": "footage",
                "filename": "anchor.mp4",
                "content_type": "video/mp4",
                "size": 700 * MB,
            },
            "size",
            "The file is 700 MB; footage for a custom avatar may be at most 600 MB.",
        ),
        (
            {"purpose": "document", "filename": "a.pdf", "content_type": "application/pdf"}
            | {"size": 51 * MB},
            "size",
            "at most 50 MB",
        ),
    ],
    ids=["type", "extension", "portrait-type", "footage-too-big", "document-too-big"],
)
def test_wrong_types_and_sizes_are_refused_before_any_byte_is_sent(
    api_a, org_a, fields, field, message
):
    response = start(api_a, org_a, **fields)

    assert response.status_code == 400
    assert message in response.json()["fields"][field][0]["message"]
    assert not Upload.objects.for_organization(org_a).exists()


def test_content_that_is_not_what_its_type_says_fails_on_completion(api_a, org_a):
    content = b"GIF89a not a png at all"
    upload_id = start(
        api_a,
        org_a,
        purpose="portrait",
        filename="me.png",
        content_type="image/png",
        size=len(content),
    ).json()["id"]
    put_chunk(api_a, org_a, upload_id, content, 0, len(content))

    response = complete(api_a, org_a, upload_id, hashlib.sha256(content).hexdigest())

    assert response.status_code == 400
    assert response.json()["detail"] == (
        "This file is not image/png: its content does not start like one."
    )
    assert api_a.get(_url(org_a, upload_id)).json()["status"] == "failed"


def test_a_chunk_may_be_larger_than_other_api_bodies_but_not_than_the_chunk_limit(
    api_a, org_a, settings
):
    settings.UPLOAD_CHUNK_MAX_BYTES = 2 * MB
    size = 3 * MB
    upload_id = start(api_a, org_a, size=size, filename="big.txt").json()["id"]

    accepted = put_chunk(api_a, org_a, upload_id, b"z" * (MB + MB // 2), 0, size)
    too_big = put_chunk(api_a, org_a, upload_id, b"z" * (size - MB // 2), MB + MB // 2, size)
    json_too_big = api_a.post(_url(org_a), {"filename": "x" * (MB + 10)}, format="json")

    assert accepted.status_code == 200, accepted.content
    assert too_big.status_code == 413
    assert too_big.json()["code"] == "body_too_large"
    assert json_too_big.status_code == 413
    assert len(stored_bytes(upload_id)) == MB + MB // 2


def test_a_chunk_needs_raw_bytes_and_a_content_range(api_a, org_a):
    upload_id = start(api_a, org_a).json()["id"]

    as_json = api_a.put(_url(org_a, upload_id), {"data": "x"}, format="json")
    no_range = api_a.generic(
        "PUT", _url(org_a, upload_id), b"abc", content_type="application/octet-stream"
    )
    wrong_total = put_chunk(api_a, org_a, upload_id, b"abc", 0, 999)

    assert as_json.status_code == 415
    assert no_range.status_code == 400
    assert no_range.json()["code"] == "content_range_required"
    assert wrong_total.status_code == 400
    assert wrong_total.json()["code"] == "content_range_total_mismatch"
    assert api_a.get(_url(org_a, upload_id)).json()["received"] == 0


def test_another_organizations_upload_cannot_be_seen_resumed_or_completed(api_a, api_b, org_a):
    upload_id = start(api_a, org_a, size=3).json()["id"]

    seen = api_b.get(_url(org_a, upload_id))
    sent = put_chunk(api_b, org_a, upload_id, b"abc", 0, 3)
    completed = complete(api_b, org_a, upload_id, "a" * 64)

    assert [seen.status_code, sent.status_code, completed.status_code] == [404, 404, 404]
    assert stored_bytes(upload_id) == b""


def test_an_operator_uploads_but_an_analyst_may_not(org_a, member_factory, client_for):
    operator = client_for(member_factory(org_a, "operator"))
    analyst = client_for(member_factory(org_a, "analyst"))

    assert start(operator, org_a).status_code == 201
    assert start(analyst, org_a).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_chunks_of_one_upload_sent_at_once_are_stored_one_after_the_other(
    org_a, owner_a, client_for
):
    """Two clients send overlapping chunks at the same moment (a retry racing the original);
    whichever goes second sees where the first left off, so the file and `received` agree."""
    content = bytes(range(256)) * 2048  # 512 KiB
    client = client_for(owner_a)
    upload_id = start(client, org_a, size=len(content)).json()["id"]
    barrier = threading.Barrier(2)
    answers = []

    def send(length: int) -> None:
        own = client_for(owner_a)
        barrier.wait(timeout=10)
        answers.append(put_chunk(own, org_a, upload_id, content[:length], 0, len(content)))
        connection.close()

    threads = [threading.Thread(target=send, args=(n,)) for n in (128 * 1024, 384 * 1024)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(answer.status_code for answer in answers) == [200, 200]
    received = client.get(_url(org_a, upload_id)).json()["received"]
    assert received == 384 * 1024
    assert stored_bytes(upload_id) == content[:received]


def test_files_are_kept_per_organization_and_upload(api_a, org_a, settings):
    upload_id = start(api_a, org_a).json()["id"]

    expected = Path(settings.MEDIA_ROOT) / "uploads" / str(org_a.pk) / upload_id
    assert expected.exists()
