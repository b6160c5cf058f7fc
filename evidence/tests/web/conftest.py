from preflight.tests.web.fixtures import *  # noqa: F401,F403 - shared personas and runs
