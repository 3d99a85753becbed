"""A bus simulator: plausible LGSP traffic (documents, dossiers, petitions, publications and
procedure listings) pushed to ingest over HTTP.

Its mix follows the province's published year (docs/domain.md): about as many dossiers as
documents sent, each document received by 2.2 agencies on average (1.07 M sent, 2.39 M
received, 917 k dossiers). Those volumes come to about 1.4 events a second over the
working hours of a year, which REAL_RATE rounds up: `up` feeds that by default; a higher
--rate is a load test."""
from __future__ import annotations

import logging
import random
import time
import uuid
from datetime import date, datetime, timedelta

import httpx

from dti_pulse.localtime import LOCAL_TZ
from dti_pulse.registry import COHORTS, Registry

log = logging.getLogger(__name__)
PROCEDURES = [f"1.0{n:05d}" for n in range(10700, 10760)]
PROCEDURES_OFFERED = 20  # of them, by each agency's catalogue
REAL_RATE = 2.0  # events a second: the province's volume in working hours
YEAR_DOCUMENTS_SENT, YEAR_DOSSIERS = 1_070_000, 917_000  # the province's published year (docs/domain.md)
RECIPIENTS = ((1, 0.40), (2, 0.25), (3, 0.10), (4, 0.25))  # how many agencies receive a document: 2.2 on average


def _stamp(moment: datetime) -> str:
    return moment.astimezone(LOCAL_TZ).isoformat(timespec="milliseconds")


class BusSimulator:
    """Generates whole life cycles: a dossier is received, processed and resolved (mostly
    on time); a document is sent, signed, received and handled."""

    def __init__(self, registry: Registry, seed: int | None = None):
        self.rng = random.Random(seed)
        self.registry = registry
        self._agencies_on: dict = {}
        self.agencies_on(datetime.now(LOCAL_TZ))  # fails early on a registry with nobody in service

    def agencies_on(self, moment: datetime) -> list[str]:
        """The scored agencies in service on that local day (districts before July 2025,
        communes after)."""
        day = moment.astimezone(LOCAL_TZ).date()
        codes = self._agencies_on.get(day)
        if codes is None:
            codes = [a.code for a in self.registry.all() if a.kind in COHORTS and a.valid_on(day)]
            if len(codes) < 2:
                raise ValueError(f"the registry has fewer than two agencies in service on {day}")
            self._agencies_on[day] = codes
        return codes

    def _event(self, kind: str, at: datetime, agency: str, **fields) -> dict:
        return {"event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "type": kind,
                "occurred_at": _stamp(at), "agency_code": agency, **fields}

    def dossier(self, now: datetime) -> list[dict]:
        rng = self.rng
        dossier_id = f"H56.{rng.randrange(10**12):012d}"
        due_days = rng.choice([1, 3, 5, 10])
        late = rng.random() < 0.07  # resolved two hours after its due time, which has passed
        received_at = now - timedelta(days=due_days if late else 0, hours=3 if late else 0,
                                      seconds=rng.randrange(0, 3600))
        # In service from its receipt to now (a late dossier was received days before now,
        # perhaps before 1 July 2025, when the districts ended and the communes began).
        then = set(self.agencies_on(received_at))
        agency = rng.choice([code for code in self.agencies_on(now) if code in then])
        due_at = received_at + timedelta(days=due_days)
        full_online = rng.random() < 0.6
        has_fee = rng.random() < 0.4
        events = [self._event("dossier.received", received_at, agency, dossier_id=dossier_id,
                              procedure_code=rng.choice(PROCEDURES),
                              channel=2 if full_online and rng.random() < 0.85 else rng.choice([1, 3]),
                              service_level="full_online" if full_online else "partial",
                              received_at=_stamp(received_at), due_at=_stamp(due_at), has_fee=has_fee)]
        # Nothing is dated after now: ingest refuses events from the future.
        at = min(now, received_at + timedelta(minutes=rng.randrange(1, 30)))
        events.append(self._event("dossier.status", at, agency, dossier_id=dossier_id, status=2))
        if late or rng.random() < 0.7:
            at = (due_at + timedelta(hours=2)) if late else min(now, at + timedelta(minutes=rng.randrange(5, 600)))
            events.append(self._event("dossier.status", at, agency, dossier_id=dossier_id, status=9))
            if has_fee:
                events.append(self._event("dossier.paid", at, agency, dossier_id=dossier_id, online=rng.random() < 0.7))
            if rng.random() < 0.3:
                events.append(self._event("dossier.rated", at, agency, dossier_id=dossier_id,
                                          satisfied=rng.random() < 0.95))
            events.append(self._event("dossier.result", at, agency, dossier_id=dossier_id,
                                      electronic=rng.random() < 0.8, shared_for_reuse=rng.random() < 0.7))
        # Digitisation and the sync to the national portal (Decision-766), drawn last so
        # that the draws above stay those of a given seed.
        events[0].update(digitized_on_receipt=rng.random() < 0.85, reused_digitized_data=rng.random() < 0.4,
                         citizen_data_used=rng.random() < 0.6)
        if rng.random() < 0.97:
            synced_at = min(now, received_at + timedelta(minutes=rng.randrange(1, 15)))
            events.append(self._event("dossier.synced", synced_at, agency, dossier_id=dossier_id))
        if rng.random() < 0.01:  # a citizen's petition, far rarer than dossiers
            events += self.petition(now)
        if rng.random() < 0.003:  # a procedure to publish: rarer still
            events += self.publication(now)
        if rng.random() < 0.002:  # an agency lists (or lists again) a procedure it offers
            events += self.listing(now)
        return events

    def _agency_since(self, moment: datetime, now: datetime) -> str:
        """An agency in service from that moment to now."""
        then = set(self.agencies_on(moment))
        return self.rng.choice([code for code in self.agencies_on(now) if code in then])

    def petition(self, now: datetime) -> list[dict]:
        """A petition due within 7 days, answered by then mostly, late now and then (dated so
        that the answer is not after now); a few still open."""
        rng = self.rng
        answered_after = timedelta(hours=rng.randrange(2, 24 * (7 if rng.random() < 0.9 else 10)))
        answered = rng.random() < 0.95
        received_at = now - (answered_after if answered else timedelta()) - timedelta(seconds=rng.randrange(3600))
        agency, petition_id = self._agency_since(received_at, now), f"PAKN.{rng.randrange(10**10):010d}"
        events = [self._event("petition.received", received_at, agency, petition_id=petition_id,
                              received_at=_stamp(received_at), due_at=_stamp(received_at + timedelta(days=7)))]
        if answered:
            answered_at = received_at + answered_after
            events.append(self._event("petition.answered", answered_at, agency, petition_id=petition_id))
            if rng.random() < 0.5:
                events.append(self._event("petition.rated", answered_at, agency, petition_id=petition_id,
                                          satisfied=rng.random() < 0.85))
        return events

    def listing(self, now: datetime) -> list[dict]:
        """One agency's listing (again) of one procedure, from now on."""
        return [self._listed(now, self._agency_since(now, now), self.rng.choice(PROCEDURES))]

    def catalogue(self, now: datetime, agencies: list[str]) -> list[dict]:
        """These agencies' catalogues from now on: each offers PROCEDURES_OFFERED of the procedures."""
        return [self._listed(now, agency, procedure) for agency in agencies
                for procedure in sorted(self.rng.sample(PROCEDURES, PROCEDURES_OFFERED))]

    def _listed(self, now: datetime, agency: str, procedure: str) -> dict:
        """Mostly published with its full content, often connected to the population database;
        the first few procedures certify copies, mostly electronically; now and then one is
        withdrawn."""
        rng = self.rng
        facts = {"withdrawn": True} if rng.random() < 0.02 else {
            "full_content": rng.random() < 0.95, "citizen_data_connected": rng.random() < 0.7,
            "certifies_copies": procedure in PROCEDURES[:3], "electronic_copy": rng.random() < 0.6}
        return self._event("procedure.listed", now, agency, procedure_id=procedure, **facts)

    def publication(self, now: datetime) -> list[dict]:
        """A procedure to publish within 5 days of its decision: mostly in time, late now and
        then, a few not yet published."""
        rng = self.rng
        published_after = timedelta(hours=rng.randrange(2, 24 * (5 if rng.random() < 0.9 else 8)))
        published = rng.random() < 0.95
        decided_at = now - (published_after if published else timedelta()) - timedelta(seconds=rng.randrange(3600))
        agency, publication_id = self._agency_since(decided_at, now), f"CK.{rng.randrange(10**10):010d}"
        events = [self._event("publication.due", decided_at, agency, publication_id=publication_id,
                              procedure_code=rng.choice(PROCEDURES), change="new" if rng.random() < 0.4 else "update",
                              decided_at=_stamp(decided_at), due_at=_stamp(decided_at + timedelta(days=5)))]
        if published:
            events.append(self._event("publication.done", decided_at + published_after, agency,
                                      publication_id=publication_id))
        return events

    def document(self, now: datetime) -> list[dict]:
        rng = self.rng
        count = rng.choices([n for n, _ in RECIPIENTS], weights=[w for _, w in RECIPIENTS])[0]
        sender, *recipients = rng.sample(self.agencies_on(now), 1 + count)
        sent_at = now - timedelta(seconds=rng.randrange(0, 3600))
        number = rng.randrange(1, 10**7)
        document_id = f"{sender},{sent_at:%Y/%m/%d},{number}/QĐ-UBND"
        electronic = rng.random() < 0.95
        base = dict(document_id=document_id, from_agency=sender, to_agencies=recipients, document_type="QĐ",
                    promulgated_on=sent_at.date().isoformat(), business_type=0, classified=rng.random() < 0.02,
                    electronic=electronic)
        events = [self._event("document.sent", sent_at, sender, **base)]
        if electronic:
            events.append(self._event("document.signed", sent_at, sender, document_id=document_id,
                                      personal_signature=rng.random() < 0.98, agency_signature=rng.random() < 0.99))
        for recipient in recipients:
            received_at = min(now, sent_at + timedelta(seconds=rng.randrange(1, 120)))
            due = (received_at + timedelta(days=rng.choice([3, 7, 15]))).date().isoformat()
            events.append(self._event("document.received", received_at, recipient, **base, due_date=due))
            if rng.random() < 0.6:
                completed_at = min(now, received_at + timedelta(minutes=rng.randrange(1, 300)))
                events.append(self._event("document.status", completed_at, recipient, document_id=document_id,
                                          status_code="06"))
        return events

    def batch(self, size: int, now: datetime | None = None) -> list[dict]:
        now = now or datetime.now(LOCAL_TZ)
        events: list[dict] = []
        while len(events) < size:
            events.extend(self.dossier(now) if self.rng.random() < 0.5 else self.document(now))
        return events


def run(url: str, token: str, registry: Registry, rate: float, batch_size: int = 50, stop=None,
        verify: str | bool = True) -> None:
    """Posts about `rate` events per second until stop() is true (forever by default)."""
    simulator = BusSimulator(registry)
    batch_size = max(1, min(batch_size, round(rate)))  # at the real rate, a few events each second
    interval = batch_size / rate
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30, verify=verify) as client:
        # The agencies' catalogues first, at once: the province's exists before any traffic.
        now = datetime.now(LOCAL_TZ)
        catalogue = simulator.catalogue(now, simulator.agencies_on(now))
        for start in range(0, len(catalogue), 1_000):
            while not (stop and stop()):  # until ingest took it: up may start the simulator first
                try:
                    response = client.post("/v1/events", json={"events": catalogue[start:start + 1_000]})
                    if response.status_code == 200:
                        break
                    log.warning("ingest answered %s to the catalogue: %s", response.status_code, response.text[:200])
                except httpx.HTTPError as exc:
                    log.warning("ingest unreachable: %s", exc)
                time.sleep(1.0)
        while not (stop and stop()):
            started = time.monotonic()
            try:
                response = client.post("/v1/events", json={"events": simulator.batch(batch_size)})
                if response.status_code != 200:
                    log.warning("ingest answered %s: %s", response.status_code, response.text[:200])
            except httpx.HTTPError as exc:
                log.warning("ingest unreachable: %s", exc)
            time.sleep(max(0.0, interval - (time.monotonic() - started)))


def sample_year(year: int, out, registry, scale: float = 1.0, seed: int = 2025) -> int:
    """A year of the province's traffic at its real volumes (x scale), as JSONL: documents
    sent and dossiers received spread over the working hours of the year's weekdays, each
    with its life cycle (docs/domain.md). Returns the events written."""
    import orjson

    rng = random.Random(seed)
    simulator = BusSimulator(registry, seed=seed)
    days = [date(year, 1, 1) + timedelta(days=n) for n in range((date(year + 1, 1, 1) - date(year, 1, 1)).days)]
    weekdays = [d for d in days if d.weekday() < 5]
    written, listed = 0, set()
    for day in weekdays:
        # Each agency's catalogue on its first day in service (the communes from July 2025).
        opening = datetime(day.year, day.month, day.day, 7, tzinfo=LOCAL_TZ)
        new = [code for code in simulator.agencies_on(opening) if code not in listed]
        for event in simulator.catalogue(opening, new):
            out.write(orjson.dumps(event) + b"\n")
            written += 1
        listed.update(new)
        for make, yearly in ((simulator.document, YEAR_DOCUMENTS_SENT), (simulator.dossier, YEAR_DOSSIERS)):
            expected = yearly * scale / len(weekdays)
            count = int(expected) + (rng.random() < expected - int(expected))
            for _ in range(count):
                moment = datetime(day.year, day.month, day.day, 8, tzinfo=LOCAL_TZ) + timedelta(
                    seconds=rng.randrange(9 * 3600))
                for event in make(moment):
                    out.write(orjson.dumps(event) + b"\n")
                    written += 1
    return written
