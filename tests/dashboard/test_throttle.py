"""dashboard.throttle.TokenBucket, the unit under the websocket rate limits."""

from dashboard import throttle


class FakeClock:
    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now


def test_token_bucket_refills_continuously_up_to_its_capacity():
    clock = FakeClock()
    bucket = throttle.TokenBucket(3, 6.0, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 2  # one token per two seconds
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 3600
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now -= 100  # a clock that steps back gives nothing
    assert bucket.take() is False
