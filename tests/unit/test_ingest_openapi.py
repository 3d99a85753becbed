"""Schemathesis against ingest's own OpenAPI description: whatever body or header it makes up,
ingest answers as described and never with a 5xx (the publisher is a fake; tests/integration
holds the Kafka path)."""
import schemathesis
from schemathesis.checks import not_a_server_error
from hypothesis import HealthCheck, settings

from dti_pulse.config import DEFAULT_AGENCIES
from dti_pulse.registry import load_registry
from services.ingest.http import create_app
from services.ingest.service import IngestService


class AcceptingPublisher:
    async def publish(self, events):
        pass

    async def ready(self):
        return True


APP = create_app(IngestService(load_registry(DEFAULT_AGENCIES), AcceptingPublisher(), 10_000),
                 {"schemathesis-token": "fuzz"}, AcceptingPublisher().ready, 1_000_000, 1_000)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_ingest_fail(case):
    for headers in ({"Authorization": "Bearer schemathesis-token"}, {}):
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error])
        assert response.status_code < 500
