"""TLS on every entrypoint, with a throwaway certificate authority: ranking's gRPC (and
mTLS), ingest's and the console's HTTPS. A plain client is refused on each."""
import datetime
import ipaddress
import ssl

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dti.ranking.v1 import ranking_pb2, ranking_pb2_grpc
from dti_pulse.broker import free_port, wait_for_port
from dti_pulse.grpc_channel import channel_credentials, ranking_channel, server_credentials
from tests import scenario
from tests.conftest import CONSOLE_PASSWORD, GRPC_TOKEN, fold, poll, service_env

pytestmark = pytest.mark.integration


class Authority:
    """A certificate authority made for one test, and the certificates it signs."""

    def __init__(self, folder, name: str):
        self.folder, self.name = folder, name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
        self.certificate = (self._builder(subject, self.key.public_key())
                            .issuer_name(subject)
                            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                            .sign(self.key, hashes.SHA256()))
        self.path = self._write(f"{name}-ca.pem", self.certificate.public_bytes(serialization.Encoding.PEM))

    @staticmethod
    def _builder(subject, public_key):
        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1)))

    def _write(self, filename: str, data: bytes):
        path = self.folder / filename
        path.write_bytes(data)
        return path

    def issue(self, name: str):
        """(certificate path, key path) for localhost / 127.0.0.1, good for server and client."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
                       .issuer_name(self.certificate.subject)
                       .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                      critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                             ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                       .sign(self.key, hashes.SHA256()))
        key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        return (self._write(f"{self.name}-{name}.pem", certificate.public_bytes(serialization.Encoding.PEM)),
                self._write(f"{self.name}-{name}.key", key_bytes))


@pytest.fixture
def pki(tmp_path):
    ours, strangers = Authority(tmp_path, "province"), Authority(tmp_path, "stranger")
    return {"ca": ours.path, "server": ours.issue("server"), "client": ours.issue("console"),
            "stranger": strangers.issue("intruder")}


@pytest.fixture
def tls_ranking(clean_chdb, pki):
    """Ranking over chDB serving gRPC over TLS, requiring a client certificate of our CA."""
    from dti_pulse.config import DEFAULT_AGENCIES, DEFAULT_RULES_DIR
    from dti_pulse.registry import load_registry
    from services.ranking.cache import CachedMeasures
    from services.ranking.grpc_server import RankingServer
    from services.ranking.rules import RulesCatalog
    from services.ranking.service import RankingService
    from services.ranking.store import ClickHouseMeasures

    fold(clean_chdb, scenario.EVENTS)
    service = RankingService(load_registry(DEFAULT_AGENCIES), RulesCatalog(DEFAULT_RULES_DIR, check_every_s=0),
                             scenario.RULES_VERSION, CachedMeasures(ClickHouseMeasures(clean_chdb)))
    cert, key = pki["server"]
    server = RankingServer(service, "127.0.0.1", free_port(), {GRPC_TOKEN: "test"},
                           server_credentials(cert, key, client_ca=pki["ca"]), watch_interval_s=0.5)
    server.start_in_thread()
    yield server
    server.stop()


def score(channel):
    return ranking_pb2_grpc.RankingServiceStub(channel).GetAgencyScore(
        ranking_pb2.GetAgencyScoreRequest(agency_code=scenario.AGENCY, period=scenario.PERIOD), timeout=10)


def test_ranking_serves_grpc_over_tls_only_to_clients_with_a_certificate_of_its_ca(tls_ranking, pki):
    address = f"127.0.0.1:{tls_ranking.port}"
    trusted = channel_credentials(pki["ca"], *pki["client"])
    assert score(ranking_channel(address, GRPC_TOKEN, trusted)).agency_code == scenario.AGENCY
    refused = {
        "plain": ranking_channel(address, GRPC_TOKEN),
        "TLS without a client certificate": ranking_channel(address, GRPC_TOKEN, channel_credentials(pki["ca"])),
        "a certificate of another CA": ranking_channel(address, GRPC_TOKEN,
                                                       channel_credentials(pki["ca"], *pki["stranger"])),
    }
    for what, channel in refused.items():
        with pytest.raises(grpc.RpcError) as failed:
            score(channel)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, what
    # TLS does not replace the token: both are asked for.
    with pytest.raises(grpc.RpcError) as failed:
        score(ranking_channel(address, "", trusted))
    assert failed.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_ingest_and_the_console_serve_https_and_refuse_plain_http(broker, topic_names, services, tls_ranking,
                                                                  pki, tmp_path):
    from services.console.auth import hash_password

    cert, key = pki["server"]
    tls = {"DTI_TLS_CERT": str(cert), "DTI_TLS_KEY": str(key), "DTI_TLS_CA": str(pki["ca"])}
    env = service_env(tmp_path, broker.bootstrap, *topic_names, **tls)
    ingest = services("tls-ingest", ["serve", "ingest"], env)
    wait_for_port("127.0.0.1", int(env["DTI_HTTP_PORT"]), timeout_s=60, process=ingest.process)
    https = f"https://127.0.0.1:{env['DTI_HTTP_PORT']}"
    poll(lambda: httpx.get(f"{https}/readyz", verify=str(pki["ca"])).status_code == 200, what="ingest over HTTPS")
    answer = httpx.post(f"{https}/v1/events", json={"events": scenario.EVENTS[:5]}, verify=str(pki["ca"]),
                        headers={"Authorization": "Bearer test-token"})
    assert answer.status_code == 200 and answer.json()["accepted"] == 5
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{env['DTI_HTTP_PORT']}/readyz", timeout=5)
    with pytest.raises(httpx.ConnectError) as untrusted:  # a client that does not trust the province's CA
        httpx.get(f"{https}/readyz", timeout=5)
    assert isinstance(untrusted.value.__context__, ssl.SSLError) or "CERTIFICATE" in str(untrusted.value).upper()

    # The console: HTTPS for the browser, and mTLS (its certificate, our CA) to ranking.
    client_cert, client_key = pki["client"]
    console_port = free_port()
    console = services("tls-console", ["serve", "console"], {
        "DTI_TLS_CERT": str(client_cert), "DTI_TLS_KEY": str(client_key), "DTI_TLS_CA": str(pki["ca"]),
        "DTI_RANKING_ADDRESS": f"127.0.0.1:{tls_ranking.port}", "DTI_RANKING_TOKEN": GRPC_TOKEN,
        "DTI_CONSOLE_PORT": str(console_port),
        "DTI_CONSOLE_VIEWERS": f"operator={hash_password(CONSOLE_PASSWORD, iterations=1000)}"})
    wait_for_port("127.0.0.1", console_port, timeout_s=60, process=console.process)
    with httpx.Client(base_url=f"https://127.0.0.1:{console_port}", verify=str(pki["ca"]), timeout=15) as browser:
        assert browser.post("/api/session", json={"username": "operator", "password": CONSOLE_PASSWORD}
                            ).status_code == 200
        ranking = poll(lambda: (r := browser.get("/api/ranking", params={"period": scenario.PERIOD})).status_code
                       == 200 and r.json(), what="the console's ranking through mTLS")
        assert any(entry["agency_code"] == scenario.AGENCY for entry in ranking["entries"])
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{console_port}/healthz", timeout=5)
