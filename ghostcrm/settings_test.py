"""Settings for the test suite: the environment's settings, with test-only isolation on top."""

from ghostcrm.settings import *  # noqa: F403
from ghostcrm.settings import env

# Tenant roles are cluster-wide: tests use their own prefix so they never touch a demo's or a colleague's.
# The suffix's underscores are dropped so that one run's prefix is never the start of another's
# ("gct" would match the roles of "gct_h2"); an empty suffix gives "gct0".
TENANT_ROLE_PREFIX = "gct" + (env.str("GHOSTCRM_TEST_DB_SUFFIX", default="").replace("_", "") or "0")
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
