import pytest

from dti_pulse.config import DEFAULT_RULES_DIR
from services.ranking.rules import RulesError, load_rules_dir, parse_rules
from services.ranking.scoring import rank, score_agency

RULES = load_rules_dir(DEFAULT_RULES_DIR)[0]["dti-pulse-2025"]


def by_code(score):
    return {i.code: i for i in score.indicators}


def test_linear_capped_and_composite_points():
    measures = {"dossiers_received": 5, "dossiers_on_time": 3, "dossiers_late": 2,
                "dossiers_full_online_procedures": 3, "dossiers_full_online_received_online": 2,
                "dossiers_with_fee": 3, "dossiers_paid_online": 1, "fee_procedures": 2,
                "fee_procedures_paid_online": 1, "fee_procedures_with_dossiers": 2, "dossiers_rated_unsatisfied": 1}
    score = score_agency("A", "department", RULES, measures)
    indicators = by_code(score)
    assert indicators["dossier_on_time_rate"].points == pytest.approx(12.0)  # 20 x 3/5
    assert indicators["dossier_full_online_rate"].points == pytest.approx(8.0)  # 12 x 2/3
    payment = indicators["dossier_online_payment"]
    # 6 x 1/3 + min(2, 2.5 x 1/2) + 2.5 x 2/2
    assert payment.points == pytest.approx(5.75)
    assert [c.points for c in payment.components] == pytest.approx([2.0, 1.25, 2.5])
    assert "C = 1" in payment.note
    satisfaction = indicators["dossier_satisfaction"]
    assert (satisfaction.numerator, satisfaction.denominator) == (2, 5)  # 5 - 2 late - 1 unsatisfied
    assert satisfaction.points == pytest.approx(6 * 0.4 / 0.9)
    # documents have no data: no value, not zero, and not in the maximum
    assert indicators["doc_electronic_rate"].ratio is None and indicators["doc_electronic_rate"].points is None
    assert score.max_points == 48
    assert score.total_points == pytest.approx(12 + 8 + 5.75 + 6 * 0.4 / 0.9)
    assert score.band == "critical"


def test_capped_shape_reaches_full_points_at_the_threshold():
    score = score_agency("A", "department", RULES, {"dossiers_received": 10, "dossiers_on_time": 10})
    assert by_code(score)["dossier_satisfaction"].points == 6.0  # r = 1 >= 0.9


def test_agency_without_data_has_no_fraction_and_no_band():
    score = score_agency("A", "commune", RULES, {})
    assert score.fraction is None and score.band == "" and score.total_points == 0


def test_bands_follow_the_rules_file():
    assert score_agency("A", "department", RULES, {"documents_total": 10, "documents_electronic": 9}).band == "ok"
    assert score_agency("A", "department", RULES, {"documents_total": 100, "documents_electronic": 85}).band == "warning"


def test_ranking_breaks_ties_by_the_heavier_group_then_code():
    from services.ranking.scoring import Score

    # The same fraction and points: the 20-point digital_government group outweighs online_service (12).
    a = Score("B-docs", [], 10, 20, 0.5, "critical", {"digital_government": 10})
    b = Score("A-online", [], 10, 20, 0.5, "critical", {"online_service": 10})
    nothing = score_agency("0-none", "department", RULES, {})
    ranked = rank([nothing, b, a], RULES)
    assert [s.agency_code for s in ranked] == ["B-docs", "A-online", "0-none"]
    assert [s.rank for s in ranked] == [1, 2, 3]
    same = [score_agency(code, "department", RULES, {"documents_total": 2, "documents_electronic": 1})
            for code in ("Z", "M")]
    assert [s.agency_code for s in rank(same, RULES)] == ["M", "Z"]


def test_ranking_is_by_the_fraction_of_the_applicable_maximum_then_points():
    # 38 of 38 (no documents) ahead of 48 of 53: the maxima differ, the fraction compares them.
    full = score_agency("Z-full", "department", RULES, {"dossiers_received": 10, "dossiers_on_time": 10,
                                                        "dossiers_full_online_procedures": 4,
                                                        "dossiers_full_online_received_online": 4,
                                                        "dossiers_with_fee": 1, "dossiers_paid_online": 1,
                                                        "fee_procedures": 1, "fee_procedures_paid_online": 1,
                                                        "fee_procedures_with_dossiers": 1})
    more = score_agency("A-more", "department", RULES, {"dossiers_received": 10, "dossiers_on_time": 10,
                                                        "dossiers_full_online_procedures": 4,
                                                        "dossiers_full_online_received_online": 4,
                                                        "dossiers_with_fee": 1, "dossiers_paid_online": 1,
                                                        "fee_procedures": 1, "fee_procedures_paid_online": 1,
                                                        "fee_procedures_with_dossiers": 1,
                                                        "documents_total": 10, "documents_electronic": 10,
                                                        "documents_sent_electronic": 10,
                                                        "documents_sent_personal_signed": 10,
                                                        "documents_sent_agency_signed": 10,
                                                        "documents_due": 10, "documents_on_time": 5})
    assert (full.total_points, full.max_points) == pytest.approx((48, 48))
    assert more.total_points > full.total_points and more.fraction < full.fraction
    assert [s.agency_code for s in rank([more, full], RULES)] == ["Z-full", "A-more"]
    # Equal fractions: more points first.
    from services.ranking.scoring import Score

    small, large = (Score(code, [], points, points * 2, 0.5, "critical", {}) for code, points in (("A", 5), ("B", 10)))
    assert [s.agency_code for s in rank([small, large], RULES)] == ["B", "A"]


def test_a_rate_never_goes_below_zero():
    # Both dossiers late, one also unsatisfied: 2 - 2 - 1 would be -1.
    score = score_agency("A", "department", RULES, {"dossiers_received": 2, "dossiers_late": 2,
                                                    "dossiers_rated_unsatisfied": 1})
    satisfaction = by_code(score)["dossier_satisfaction"]
    assert (satisfaction.numerator, satisfaction.ratio, satisfaction.points) == (0, 0.0, 0.0)


RULE_HEAD = 'version = "t"\n'


@pytest.mark.parametrize("text, message", [
    ("version = \n", "t.toml: Invalid value (at line 1"),
    ('title = "x"\n', "t.toml:1: 'version'"),
    (RULE_HEAD + '[[indicators]]\ncode = "x"\ngroup = "g"\nmax_points = 5\nshape = "cubic"\n',
     "t.toml:3: indicator 'x': shape 'cubic'"),
    (RULE_HEAD + '[[indicators]]\ncode = "x"\ngroup = "g"\nmax_points = 5\nnumerator = "bananas"\ndenominator = "dossiers_received"\n',
     "unknown measure 'bananas'"),
    (RULE_HEAD + '[[indicators]]\ncode = "x"\ngroup = "g"\nmax_points = 5\nshape = "capped"\nnumerator = "dossiers_on_time"\ndenominator = "dossiers_received"\n',
     "'threshold' is required"),
    (RULE_HEAD + '[[indicators]]\ncode = "x"\ngroup = "g"\nmax_points = -1\nnumerator = "dossiers_on_time"\ndenominator = "dossiers_received"\n',
     "'max_points' must be a non-negative number"),
    (RULE_HEAD + '[indices.766]\nmax_points = 100\n[[indicators]]\ncode = "x"\nindex = "dti"\ngroup = "g"\n'
     'max_points = 5\nnumerator = "dossiers_on_time"\ndenominator = "dossiers_received"\n',
     "index 'dti' is not one of the file's [indices]: 766"),
    (RULE_HEAD + '[indices.766]\nmax_points = 4\n[[indicators]]\ncode = "x"\nindex = "766"\ngroup = "g"\n'
     'max_points = 5\nnumerator = "dossiers_on_time"\ndenominator = "dossiers_received"\n',
     "t.toml:2: index '766' is out of 4 points, but its indicators of cohort 'department' add up to 5"),
])
def test_malformed_rules_are_refused_with_file_line_and_problem(text, message):
    with pytest.raises(RulesError) as refused:
        parse_rules(text, "t.toml")
    assert message in str(refused.value)


def test_a_bad_file_does_not_stop_the_good_ones(tmp_path):
    (tmp_path / "good.toml").write_text((DEFAULT_RULES_DIR / "dti-pulse-2025.toml").read_text(encoding="utf-8"),
                                        encoding="utf-8")
    (tmp_path / "bad.toml").write_text("version = [", encoding="utf-8")
    rulesets, errors = load_rules_dir(tmp_path)
    assert list(rulesets) == ["dti-pulse-2025"]
    assert len(errors) == 1 and "bad.toml" in errors[0]


def test_full_points_when_empty_stand_beside_what_was_measured():
    text = RULE_HEAD + ('[[indicators]]\ncode = "x"\ngroup = "g"\nmax_points = 4\nwhen_empty = "full"\n'
                        'numerator = "petitions_on_time"\ndenominator = "petitions_received"\n'
                        '[[indicators]]\ncode = "y"\ngroup = "g"\nmax_points = 2\n'
                        'numerator = "dossiers_on_time"\ndenominator = "dossiers_received"\n')
    rules = parse_rules(text, "t.toml")
    score = score_agency("A", "department", rules, {"dossiers_received": 2, "dossiers_on_time": 1})
    assert [i.points for i in score.indicators] == [4.0, 1.0] and score.fraction == 5 / 6  # no petitions: full
    nothing = score_agency("A", "department", rules, {})
    assert [i.points for i in nothing.indicators] == [None, None] and nothing.fraction is None  # no score at all


def test_rules_catalog_reloads_keeps_the_last_good_version_and_drops_removed_files(tmp_path):
    from services.ranking.rules import RulesCatalog

    clock = [0.0]
    path = tmp_path / "r.toml"
    good = RULE_HEAD + ('[[indicators]]\ncode = "x"\ngroup = "g"\nmax_points = 4\n'
                        'numerator = "dossiers_on_time"\ndenominator = "dossiers_received"\n')
    path.write_text(good, encoding="utf-8")
    catalog = RulesCatalog(tmp_path, check_every_s=1.0, clock=lambda: clock[0])
    assert catalog.rulesets()["t"].indicators[0].max_points == 4
    path.write_text(good.replace("max_points = 4", "max_points = -4"), encoding="utf-8")
    assert catalog.errors() == []  # not looked at again before check_every_s
    clock[0] += 2
    assert catalog.rulesets()["t"].indicators[0].max_points == 4  # last good
    assert "r.toml:3: indicator 'x': 'max_points'" in catalog.errors()[0]
    path.write_text(good.replace("max_points = 4", "max_points = 8"), encoding="utf-8")
    clock[0] += 2
    assert catalog.rulesets()["t"].indicators[0].max_points == 8 and catalog.errors() == []
    path.unlink()
    clock[0] += 2
    assert catalog.rulesets() == {}


def test_each_published_index_is_totalled_apart_on_its_own_scale():
    rules = load_rules_dir(DEFAULT_RULES_DIR)[0]["dti-pulse-2026"]
    # Every dossier, petition, publication and procedure indicator of 2026 counts in the 766 index, every
    # document one in DTI.
    assert {i.code for i in rules.indicators if i.index == "766"} == \
        {i.code for i in rules.indicators if i.code.startswith(("dossier_", "petition_", "publication_", "procedure_"))}
    measures = {"dossiers_received": 10, "dossiers_on_time": 5, "dossiers_synced": 10,
                "documents_total": 4, "documents_electronic": 2}
    score = score_agency("A", "department", rules, measures)
    indices = {i.index: (i.points, i.max_points, i.index_max_points) for i in score.indices}
    on_time, synced = 20 * 0.5, 6.0
    # Satisfaction (6), digitised (4), reused (2, full at 80 %) and population data (2) have
    # dossiers received as denominator, so they count with 0 points; no result, no fee,
    # no full-online procedure: those leave the maximum. No petitions: 6 + 6, as the portal gives.
    assert indices["766"] == pytest.approx((on_time + synced + min(6, 6 * 1.0 / 0.9) + 12,
                                            20 + 6 + 6 + 4 + 2 + 2 + 12, 100))
    assert indices["dti"] == pytest.approx((5 * 0.5, 5, 20))
    assert score.total_points == pytest.approx(indices["766"][0] + indices["dti"][0])


def test_each_766_indicator_the_portal_publishes_carries_its_metric_code():
    rules = load_rules_dir(DEFAULT_RULES_DIR)[0]["dti-pulse-2026"]
    portal = {i.code: i.portal_code for i in rules.indicators if i.portal_code}
    # The portal's transparency, satisfaction and digitisation metrics (14 codes); progress,
    # online service and payment are published as trees without a metric code.
    assert len(portal) == len(set(portal.values())) == 14
    assert portal["publication_new_on_time_rate"] == "PUBLISH_ON_TIME"
    assert {i.index for i in rules.indicators if i.portal_code} == {"766"}
    score = score_agency("A", "department", rules, {"dossiers_received": 4, "dossiers_synced": 3})
    assert {i.code: i.portal_code for i in score.indicators}["dossier_sync_rate"] == "DOSSIER_SYNC"
