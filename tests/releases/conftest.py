from tests.alerts.conftest import assert_valid_cap, cap_schema  # noqa: F401 - the CAP schema fixtures
