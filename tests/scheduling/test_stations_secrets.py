"""Stream keys at rest: Fernet encryption, the key it uses, rotation to a new key, and a key that
cannot be read any more failing with a message saying what to do.

Real: the cryptography package's Fernet and HKDF, Django settings (overridden per test), the
database and the `rotate_stream_keys` management command. Nothing is simulated.
"""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from ironbowl.config import ConfigurationError, load_config
from scheduling import secrets, services
from scheduling.models import Station
from tenants.audit import SYSTEM

KEY = "live-7731?txSecret=5e1f00d4&txTime=66AA0000"


def _room(organization, name="Room", key=KEY) -> Station:
    return services.create_station(
        SYSTEM,
        organization,
        name=name,
        kind="live_room",
        push_url="rtmp://push.example.com/live",
        stream_key=key,
    )


def _stored(station: Station) -> str:
    return (
        Station.objects.for_organization(station.organization)
        .get(pk=station.pk)
        .stream_key_encrypted
    )


def test_encryption_round_trips_and_each_ciphertext_differs(settings):
    settings.STREAM_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    first, second = secrets.encrypt(KEY), secrets.encrypt(KEY)
    assert first != second  # a fresh IV each time: equal keys do not look equal at rest
    assert KEY not in first
    assert secrets.decrypt(first) == secrets.decrypt(second) == KEY


def test_without_a_dedicated_key_the_key_is_derived_from_secret_key(settings):
    settings.STREAM_KEY_ENCRYPTION_KEY = ""
    token = secrets.encrypt(KEY)
    assert Fernet(secrets.derived_key(settings.SECRET_KEY)).decrypt(token.encode()).decode() == KEY
    # Derived under its own label: not the secret key itself, and not another secret's key.
    assert secrets.derived_key(settings.SECRET_KEY) != secrets.derived_key(
        settings.SECRET_KEY + "x"
    )


def test_a_wrong_key_fails_clearly(settings, org_a):
    settings.STREAM_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    station = _room(org_a)
    settings.STREAM_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()  # the old one is lost
    with pytest.raises(secrets.StreamKeyUnreadable) as refused:
        secrets.decrypt(station.stream_key_encrypted)
    assert refused.value.code == "stream_key_unreadable"
    assert refused.value.field == "stream_key"
    assert "cannot be decrypted" in str(refused.value.detail)
    assert "STREAM_KEY_ENCRYPTION_KEY_FALLBACKS" in str(refused.value.detail)
    with pytest.raises(secrets.StreamKeyUnreadable):
        secrets.rtmp_url_of(station)


def test_a_tampered_ciphertext_fails_the_same_way(settings, org_a):
    station = _room(org_a)
    token = station.stream_key_encrypted
    tampered = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    with pytest.raises(secrets.StreamKeyUnreadable):
        secrets.decrypt(tampered)


def test_rotation_moves_every_station_to_the_new_key(settings, org_a, org_b):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.STREAM_KEY_ENCRYPTION_KEY = old_key
    rooms = [_room(org_a, "A"), _room(org_b, "B", key="beta-key-0123456789")]
    updated_at = [room.updated_at for room in rooms]

    # Step 1: the new key in front, the old one still decrypts.
    settings.STREAM_KEY_ENCRYPTION_KEY = new_key
    settings.STREAM_KEY_ENCRYPTION_KEY_FALLBACKS = [old_key]
    assert [secrets.decrypt(_stored(room)) for room in rooms] == [KEY, "beta-key-0123456789"]
    assert not any(secrets.is_current(_stored(room)) for room in rooms)

    # Step 2: re-encrypt everything; running it again has nothing left to do.
    out = io.StringIO()
    call_command("rotate_stream_keys", stdout=out)
    assert "Re-encrypted 2 stream key(s); 0 already used the current key." in out.getvalue()
    out = io.StringIO()
    call_command("rotate_stream_keys", stdout=out)
    assert "Re-encrypted 0 stream key(s); 2 already used the current key." in out.getvalue()

    # Step 3: the old key can go.
    settings.STREAM_KEY_ENCRYPTION_KEY_FALLBACKS = []
    assert [secrets.decrypt(_stored(room)) for room in rooms] == [KEY, "beta-key-0123456789"]
    # Rotation is maintenance, not a change anyone made to a station.
    assert [
        Station.objects.for_organization(r.organization).get(pk=r.pk).updated_at for r in rooms
    ] == updated_at


def test_moving_from_the_derived_key_to_a_dedicated_one_needs_no_fallback(settings, org_a):
    settings.STREAM_KEY_ENCRYPTION_KEY = ""
    room = _room(org_a)
    settings.STREAM_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    assert secrets.decrypt(_stored(room)) == KEY  # the key derived from SECRET_KEY still opens it
    call_command("rotate_stream_keys", stdout=io.StringIO())
    assert secrets.is_current(_stored(room))


def test_rotation_names_the_stations_whose_key_is_lost_and_fails(settings, org_a):
    settings.STREAM_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    lost = _room(org_a, "Lost room")
    settings.STREAM_KEY_ENCRYPTION_KEY = Fernet.generate_key().decode()
    kept = _room(org_a, "Kept room")
    before = _stored(lost)
    with pytest.raises(CommandError) as failed:
        call_command("rotate_stream_keys", stdout=io.StringIO())
    assert "1 stream key(s) could not be decrypted" in str(failed.value)
    assert f"alpha-hospital: station {lost.pk} (Lost room)" in str(failed.value)
    assert str(kept.pk) not in str(failed.value)
    assert _stored(lost) == before


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STREAM_KEY_ENCRYPTION_KEY", "not-a-fernet-key"),
        ("STREAM_KEY_ENCRYPTION_KEY_FALLBACKS", f"{Fernet.generate_key().decode()},short"),
    ],
)
def test_a_malformed_encryption_key_stops_start_up_naming_the_variable(
    monkeypatch, variable, value
):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        load_config()
    assert variable in str(refused.value)
    assert "must be a Fernet key" in str(refused.value)


def test_fallback_keys_are_read_comma_separated(monkeypatch):
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    monkeypatch.setenv("STREAM_KEY_ENCRYPTION_KEY_FALLBACKS", " , ".join(keys))
    fallbacks = load_config().STREAM_KEY_ENCRYPTION_KEY_FALLBACKS
    assert fallbacks == keys
