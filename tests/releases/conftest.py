import pytest

from geo.models import River
from sensors.models import StationKind
from tests.alerts.conftest import assert_valid_cap, cap_schema  # noqa: F401 - the CAP schema fixtures
from tests.conftest import make_station


@pytest.fixture
def dam(towns):
    """Town A's dam, upstream on 水森川 (a river on the map)."""
    River.objects.create(name_ja="水森川", name_en="Mizumori River",
                         geometry={"type": "LineString", "coordinates": [[140.0, 35.2], [140.05, 35.1], [140.1, 35.0]]})
    return make_station(towns[0], "A-DAM", kind=StationKind.RESERVOIR, lon=140.0, lat=35.2)
