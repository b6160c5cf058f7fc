"""Suite-wide: each test counts sign-in failures in its own cache.

The site cache is Redis when REDIS_URL is set (CI sets it), where the sign-in limit's counters
(aegis_base/login_limit.py) would outlive a test and lock the test client's address for the
tests after it. The Redis path has its own test (tests/security/test_login_limit.py).
"""

import itertools

import pytest

_n = itertools.count()


@pytest.fixture(autouse=True)
def _own_cache(settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"test-{next(_n)}"}
    }
