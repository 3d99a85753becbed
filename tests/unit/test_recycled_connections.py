"""RecycledConnections: a keep-alive connection is told to close once it is old enough."""
import asyncio

from services.ingest.http import RecycledConnections


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


async def answer(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


def request(app, client=("10.0.0.1", 50000), kind="http") -> dict:
    """The headers of the answer, as a dict (None for a scope with no response start)."""
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    asyncio.run(app({"type": kind, "client": client}, receive, send))
    starts = [message for message in sent if message["type"] == "http.response.start"]
    return dict(starts[0]["headers"]) if starts else None


def test_a_connection_is_closed_by_its_first_answer_after_the_max_age():
    clock = Clock()
    app = RecycledConnections(answer, max_age_s=1.0, clock=clock)
    assert b"connection" not in request(app)
    clock.now += 0.99
    assert b"connection" not in request(app)
    clock.now += 0.02
    closing = request(app)
    assert closing[b"connection"] == b"close" and closing[b"content-type"] == b"application/json"
    # The same address and port again is a new connection: its age starts over.
    assert b"connection" not in request(app)
    clock.now += 0.5
    assert b"connection" not in request(app)


def test_connections_age_on_their_own():
    clock = Clock()
    app = RecycledConnections(answer, max_age_s=1.0, clock=clock)
    request(app, client=("10.0.0.1", 1))
    clock.now += 0.6
    request(app, client=("10.0.0.1", 2))
    clock.now += 0.6
    assert request(app, client=("10.0.0.1", 1))[b"connection"] == b"close"
    assert b"connection" not in request(app, client=("10.0.0.1", 2))


def test_no_max_age_keeps_connections_and_other_scopes_pass_through():
    clock = Clock()
    kept = RecycledConnections(answer, max_age_s=0, clock=clock)
    request(kept)
    clock.now += 3600
    assert b"connection" not in request(kept)
    app = RecycledConnections(answer, max_age_s=1.0, clock=clock)
    assert b"connection" not in request(app, client=None)  # no peer address known: nothing to age
    clock.now += 10
    assert b"connection" not in request(app, client=None)


def test_connections_that_left_are_forgotten():
    clock = Clock()
    app = RecycledConnections(answer, max_age_s=1.0, clock=clock)
    for port in range(RecycledConnections.SWEEP_ABOVE + 10):
        request(app, client=("10.0.0.1", port))
    clock.now += 2
    request(app, client=("10.0.0.2", 1))  # past the sweep size: the old ones are dropped
    assert len(app._opened_at) == 1
