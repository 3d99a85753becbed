"""The alert loop: every DTI_ALERT_INTERVAL_S it judges the alert rules against this month's
scores and the live activity, and sends a notice when an alert fires and when it recovers,
by webhook (JSON POST) and by e-mail (SMTP). A notice that could not be delivered is tried
again at the next round; the alerts firing answer ListAlerts (and the console). With a
store of AlertRecords, what fires and the notices owed outlive the process: a restart
neither notifies again what still holds nor forgets a notice it owes, and a `drop` compares
with what the index was before it."""
from __future__ import annotations

import logging
import smtplib
import threading
import time
from datetime import datetime
from email.message import EmailMessage
from typing import Callable, Protocol

import httpx

from dti_pulse.localtime import LOCAL_TZ
from services.ranking.alerts import Alert, AlertBook, AlertRecord, AlertRule, IndexHistory, below, drop, silent
from services.ranking.background import BackgroundLoop

log = logging.getLogger(__name__)


class AlertRecords(Protocol):
    def load(self) -> list[AlertRecord]: ...  # the newest record of each alert
    def save(self, records: list[AlertRecord]) -> None: ...
    def load_samples(self, since_ms: int) -> list[tuple[str, int, float]]: ...  # the index history, oldest first
    # and forgets the samples before forget_before_ms, when given
    def save_samples(self, samples: list[tuple[str, int, float]], forget_before_ms: int | None = None) -> None: ...


class Notifier(Protocol):
    name: str

    def send(self, event: str, alert: Alert, since_ms: int) -> None: ...  # event: "fired" | "recovered"; raises


def notice(event: str, alert: Alert, since_ms: int) -> dict:
    return {"event": event, "rule": alert.rule, "severity": alert.severity, "agency_code": alert.agency_code,
            "agency_name": alert.agency_name, "message": alert.message, "value": alert.value,
            "threshold": alert.threshold,
            "since": datetime.fromtimestamp(since_ms / 1000, LOCAL_TZ).isoformat(timespec="seconds")}


class WebhookNotifier:
    name = "webhook"

    def __init__(self, url: str, timeout_s: float = 10.0):
        self.url, self.timeout_s = url, timeout_s

    def send(self, event: str, alert: Alert, since_ms: int) -> None:
        response = httpx.post(self.url, json=notice(event, alert, since_ms), timeout=self.timeout_s)
        response.raise_for_status()


class MailNotifier:
    name = "mail"

    def __init__(self, host: str, port: int, sender: str, recipients: list[str], username: str = "",
                 password: str = "", starttls: bool = False, timeout_s: float = 10.0):
        self.host, self.port, self.sender, self.recipients = host, port, sender, recipients
        self.username, self.password, self.starttls, self.timeout_s = username, password, starttls, timeout_s

    def send(self, event: str, alert: Alert, since_ms: int) -> None:
        facts = notice(event, alert, since_ms)
        message = EmailMessage()
        state = "CẢNH BÁO" if event == "fired" else "Đã trở lại bình thường"
        message["Subject"] = f"[dti-pulse] {state}: {alert.agency_name} ({alert.agency_code}) – {alert.rule}"
        message["From"], message["To"] = self.sender, ", ".join(self.recipients)
        message.set_content("\n".join([
            f"{state} / {'Alert' if event == 'fired' else 'Recovered'}: {alert.rule} ({alert.severity})",
            f"{alert.agency_name} ({alert.agency_code})", alert.message, f"Since: {facts['since']}"]))
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(message)


class AlertLoop:
    def __init__(self, service, rules: list[AlertRule], notifiers: list[Notifier], interval_s: float = 60.0,
                 clock_ms: Callable[[], int] = lambda: int(time.time() * 1000), records: AlertRecords | None = None):
        self.service, self.rules, self.notifiers, self.clock_ms = service, rules, notifiers, clock_ms
        self.records = records
        self._restored = records is None
        self._unsaved: dict[tuple[str, str], AlertRecord] = {}
        self.book = AlertBook()
        self.history = IndexHistory(max((r.window_minutes for r in rules if r.kind == "drop"), default=0))
        self._unsaved_samples: list[tuple[str, int, float]] = []
        self._samples_forgotten_at_ms = 0
        self.undelivered: list[tuple[Notifier, str, Alert, int]] = []
        self.evaluated_at_ms: int | None = None
        self._lock = threading.Lock()
        self._loop = BackgroundLoop("alerts", self.evaluate, interval_s, "alert evaluation failed")

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop(5.0)

    def evaluate(self) -> tuple[list[Alert], list[Alert]]:
        """One round: judge every rule, note what fired and recovered, send the notices."""
        if not self._restored:
            self._restore()  # raises while the store is away: the round is tried again, nothing sent
        now = self.clock_ms()
        month = datetime.fromtimestamp(now / 1000, LOCAL_TZ).strftime("%Y-%m")
        found: list[Alert] = []
        cohorts = sorted({c for rule in self.rules if rule.kind in ("below", "drop") for c in rule.cohorts})
        scored = []
        for cohort in cohorts:
            for entry in self.service.ranking(cohort, month).entries:
                scored.append((entry.agency.code, entry.agency.name, cohort, entry.score))
                if entry.score.fraction is not None and self.history.keep_minutes:
                    self.history.add(entry.agency.code, now, entry.score.fraction)
                    if self.records is not None:
                        self._unsaved_samples.append((entry.agency.code, now, entry.score.fraction))
        for rule in self.rules:
            if rule.kind == "below":
                found += below(rule, [(c, n, k, s.indicators) for c, n, k, s in scored])
            elif rule.kind == "drop":
                found += drop(rule, [(c, n, k, s.fraction) for c, n, k, s in scored], self.history, now)
            else:
                found += silent(rule, self.service.last_events(rule.lookback_minutes), now)
        with self._lock:
            fired, recovered = self.book.update(found, now)
            self.evaluated_at_ms = now
            since = {alert.key: at for alert, at in self.book.firing()}
        pending, self.undelivered = self.undelivered, []
        pending += [(n, "fired", a, since[a.key]) for a in fired for n in self.notifiers]
        pending += [(n, "recovered", a, now) for a in recovered for n in self.notifiers]
        for notifier, event, alert, at in pending:
            try:
                notifier.send(event, alert, at)
            except Exception as exc:
                log.warning("alert notice by %s not delivered (tried again next round): %s", notifier.name, exc)
                self.undelivered.append((notifier, event, alert, at))
        if self.records is not None:
            # The newest words of each alert whose record changes (fired last: they win).
            changed = {a.key: a for a in (*(alert for _, _, alert, _ in pending), *recovered, *fired)}
            self._unsaved.update((key, self._record(alert, since, now)) for key, alert in changed.items())
            try:
                self.records.save(list(self._unsaved.values()))
                self._unsaved.clear()
            except Exception as exc:  # kept, and saved with the next round's
                log.warning("alert states not saved (tried again next round): %s", exc)
            if self._unsaved_samples:
                oldest = now - self.history.keep_minutes * 60_000
                forget = now - self._samples_forgotten_at_ms >= 3_600_000  # what left the window, hourly
                try:
                    self.records.save_samples(self._unsaved_samples, oldest if forget else None)
                    self._unsaved_samples = []
                    if forget:
                        self._samples_forgotten_at_ms = now
                except Exception as exc:  # kept while within the longest window
                    self._unsaved_samples = [s for s in self._unsaved_samples if s[1] >= oldest]
                    log.warning("alert index samples not saved (tried again next round): %s", exc)
        if fired or recovered:
            log.info("alerts: %d fired, %d recovered, %d firing", len(fired), len(recovered), len(since))
        return fired, recovered

    def _record(self, alert: Alert, since: dict, now: int) -> AlertRecord:
        owed = tuple((n.name, event) for n, event, owed_alert, _ in self.undelivered if owed_alert.key == alert.key)
        recovered_at = next((at for _, event, a, at in self.undelivered if a.key == alert.key and event == "recovered"),
                            now)
        firing = alert.key in since
        return AlertRecord(alert, firing, since[alert.key] if firing else recovered_at, owed)

    def _restore(self) -> None:
        records = self.records.load()
        samples = (self.records.load_samples(self.clock_ms() - self.history.keep_minutes * 60_000)
                   if self.history.keep_minutes else [])
        notifiers = {n.name: n for n in self.notifiers}
        with self._lock:
            self.book.restore(records)
        self.history.restore(samples)
        # A notice owed to a notifier no longer configured is dropped with the configuration.
        self.undelivered = [(notifiers[name], event, r.alert, r.since_ms)
                            for r in records for name, event in r.owed if name in notifiers]
        self._restored = True
        log.info("alerts restored: %d firing, %d notices owed, %d index samples", sum(r.firing for r in records),
                 len(self.undelivered), len(samples))

    def firing(self) -> tuple[list[tuple[Alert, int]], int | None]:
        with self._lock:
            return self.book.firing(), self.evaluated_at_ms
