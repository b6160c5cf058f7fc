from preflight.tests.web.fixtures import *  # noqa: F401,F403 - personas, the bundled lab, per-test AEGIS_HOME
