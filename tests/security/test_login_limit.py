"""Sign-in is rate-limited: failed passwords per user name, failures per client address, bad tokens.

Given AEGIS_LOGIN_FAILURES_MAX failed sign-ins for a user name, when the right password comes
next, then it is refused (429 with the wait) until AEGIS_LOGIN_LOCKOUT_S has passed; an address
that keeps sending bad API tokens gets 429 with Retry-After, also for a good token; another
address is not affected. The counters are in Django's cache: process memory here, and the real
Redis in the last test (REDIS_URL), as at a site.
"""

from __future__ import annotations

import os
import time
import uuid

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from aegis_base.login_limit import IP_FACTOR

pytestmark = pytest.mark.django_db

PASSWORD = "olivia-pw-12345"  # preflight/tests/web/fixtures.py


@pytest.fixture
def limit(settings):
    settings.AEGIS_LOGIN_FAILURES_MAX = 3
    settings.AEGIS_LOGIN_LOCKOUT_S = 900
    return settings


def sign_in(client: Client, username: str, password: str, *, admin: bool = False):
    url = "/admin/login/" if admin else "/accounts/login/"
    return client.post(url, {"username": username, "password": password})


def test_failed_passwords_lock_the_user_name_then_the_lock_expires(limit, operator, approver):
    client = Client(REMOTE_ADDR="10.0.0.7")
    for _ in range(3):
        wrong = sign_in(client, "olivia", "not-her-password")
        assert wrong.status_code == 200 and "do not match" in wrong.content.decode()
    locked = sign_in(client, "olivia", PASSWORD)
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 800
    assert "Too many failed sign-ins" in locked.content.decode()
    # the lock is on the name, from any address; the address itself may still sign others in
    assert sign_in(Client(REMOTE_ADDR="10.0.0.8"), "olivia", PASSWORD).status_code == 429
    assert sign_in(client, "alice", "alice-pw-12345").status_code == 302
    # the admin's sign-in page refuses too, with the same sentence
    assert "Too many failed sign-ins" in sign_in(client, "olivia", PASSWORD, admin=True).content.decode()
    # once the window has passed (a short one here), the right password works again
    limit.AEGIS_LOGIN_LOCKOUT_S = 1
    time.sleep(1.2)
    assert sign_in(client, "olivia", PASSWORD).status_code == 302


def test_a_right_password_clears_the_count(limit, operator):
    client = Client(REMOTE_ADDR="10.0.0.9")
    for _ in range(2):
        sign_in(client, "olivia", "wrong")
    assert sign_in(client, "olivia", PASSWORD).status_code == 302
    for _ in range(2):
        sign_in(Client(REMOTE_ADDR="10.0.0.9"), "olivia", "wrong")
    assert sign_in(Client(REMOTE_ADDR="10.0.0.9"), "olivia", PASSWORD).status_code == 302


def test_an_address_guessing_many_names_is_locked(limit, operator):
    client = Client(REMOTE_ADDR="10.0.0.10")
    for n in range(3 * IP_FACTOR):
        sign_in(client, f"nobody{n}", "guess")
    assert sign_in(client, "olivia", PASSWORD).status_code == 429
    assert sign_in(Client(REMOTE_ADDR="10.0.0.11"), "olivia", PASSWORD).status_code == 302


def test_bad_api_tokens_lock_the_address_429_with_retry_after(limit, operator):
    good = Token.objects.create(user=operator).key
    client = Client(REMOTE_ADDR="10.0.0.12")
    for _ in range(3 * IP_FACTOR):
        assert client.get("/api/runs", HTTP_AUTHORIZATION="Token " + "0" * 40).status_code == 401
    refused = client.get("/api/runs", HTTP_AUTHORIZATION=f"Token {good}")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 800
    assert "Too many failed sign-ins" in refused.json()["detail"]
    assert Client(REMOTE_ADDR="10.0.0.13").get("/api/runs", HTTP_AUTHORIZATION=f"Token {good}").status_code == 200


def test_behind_a_proxy_the_client_address_is_the_one_the_proxy_appended(limit, operator):
    limit.AEGIS_CLIENT_IP_HEADER = "X-Forwarded-For"
    proxy = {"REMOTE_ADDR": "10.9.9.9"}
    for n in range(3 * IP_FACTOR):
        # the client forges a left-hand entry; the proxy appends the address it saw
        Client(**proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 192.0.2.50").post(
            "/accounts/login/", {"username": f"x{n}", "password": "guess"}
        )
    assert sign_in(Client(**proxy, HTTP_X_FORWARDED_FOR="192.0.2.50"), "olivia", PASSWORD).status_code == 429
    assert sign_in(Client(**proxy, HTTP_X_FORWARDED_FOR="192.0.2.51"), "olivia", PASSWORD).status_code == 302


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (the site's cache)")
def test_the_counters_live_in_redis_at_a_site(limit, operator):
    prefix = f"aegis-test-{uuid.uuid4().hex}"
    limit.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["REDIS_URL"],
            "KEY_PREFIX": prefix,
        }
    }
    from django.core.cache import cache

    try:
        client = Client(REMOTE_ADDR="10.0.0.14")
        for _ in range(3):
            sign_in(client, "olivia", "wrong")
        assert sign_in(client, "olivia", PASSWORD).status_code == 429
        keys = cache._cache.get_client().keys(f"{prefix}:*")
        assert keys, "the counters are not in Redis"
    finally:
        client_ = cache._cache.get_client()
        for key in client_.keys(f"{prefix}:*"):
            client_.delete(key)


def test_with_the_cache_unreachable_sign_in_goes_on(limit, operator):
    """Fails open: Redis down must not lock every user out (reads keep working, docs/reliability.md)."""
    limit.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    token = Token.objects.create(user=operator).key
    assert sign_in(Client(REMOTE_ADDR="10.0.0.15"), "olivia", "wrong").status_code == 200
    assert sign_in(Client(REMOTE_ADDR="10.0.0.15"), "olivia", PASSWORD).status_code == 302
    assert Client().get("/api/runs", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200
