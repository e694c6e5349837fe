"""Settings of the servers the tests start (tests/e2e `AsgiServer`, nginx's upstream): production's,
and the test process's password hashers, so a user a fixture created logs in through the form.

Production's content-hashed static names, from a collectstatic the test session ran into a directory
of its own (tests/e2e/conftest.py `collected_static_root`), never a manifest a `make demo` left in
staticfiles/; without WhiteNoise's precompression, which is WhiteNoise's own and costs a minute of
CPU per run (the report font alone), while hashing the files takes three seconds.

The tests hash passwords with MD5 (tests/conftest.py `fast_password_hashing`): Django's PBKDF2 runs a
million iterations, about half a second of CPU per hash, and fixtures create and log in users by the
hundred. MD5 first, so a login does not re-hash a password into the slow default; the defaults after
it, so a hash written with them (e.g. by a management command in a subprocess) still checks.
"""

from django.conf import global_settings

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *global_settings.PASSWORD_HASHERS]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}  # noqa: F405
