"""Reading SIU messages and acknowledging them (``discharge.hl7.siu``): the model layer, fast,
and a bounded fuzz run of damaged messages (no exception, always an acknowledgement)."""

from __future__ import annotations

from pathlib import Path

import hl7
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discharge.config import Config, parse_config
from discharge.errors import ConfigError
from discharge.hl7.settings import load_hl7_settings
from discharge.hl7.siu import (
    MessageError,
    decode_frame,
    make_ack,
    read_booking,
)
from tests.test_hl7_listen import SETTINGS, siu

CONFIG = parse_config(
    {
        "hl7": {
            "patient_id_type": "MR",
            "procedures": {"HSG": "hsg", "misc-med": "miscarriage:medical"},
        }
    }
)
HL7 = load_hl7_settings(CONFIG)


def booking(message: str | bytes, config: Config = CONFIG):  # type: ignore[no-untyped-def]
    data = message.encode("utf-8") if isinstance(message, str) else message
    return read_booking(decode_frame(data), HL7, config)


def test_the_booking_carries_the_patient_and_the_appointment() -> None:
    found = booking(siu("S12", start="202612070930", language="spa"))
    request = found.request
    assert found.event == "S12" and found.filler == "A1" and found.placer == "P-A1"
    assert request.procedure == "hsg" and request.variant == ""
    assert request.patient.name == "Zoë Nguyễn" and request.patient.mrn == "RX-104233"
    assert request.patient.dob.isoformat() == "1990-02-01"
    assert request.day.isoformat() == "2026-12-07" and request.at.strftime("%H:%M") == "09:30"
    assert request.clinician == "Dr Amara Okafor" and request.language == "es"
    assert found.email == "zoe@example.org"


def test_codes_ignore_case_and_carry_the_variant() -> None:
    found = booking(siu("S12", reason="Misc-Med"))
    assert (found.request.procedure, found.request.variant) == ("miscarriage", "medical")


def test_a_start_with_an_offset_is_read_in_the_clinics_time_zone() -> None:
    # 23:30 in New York is 04:30 the next day in London (the demo clinic's zone).
    found = booking(siu("S12", start="20261207233000-0500"))
    assert found.request.day.isoformat() == "2026-12-08"
    assert found.request.at.strftime("%H:%M") == "04:30"


def test_without_the_clinics_identifier_type_the_first_is_the_hospital_number() -> None:
    config = parse_config({"hl7": {"procedures": {"HSG": "hsg"}}})
    found = read_booking(decode_frame(siu("S12").encode()), load_hl7_settings(config), config)
    assert found.request.patient.mrn == "998877"
    assert found.patient.hospital_number == "998877"  # what its filing's audit record says


def test_a_cancellation_needs_only_the_appointment() -> None:
    found = booking(siu("S15", family="", dob="", start="", reason=""))
    assert found.event == "S15" and found.request is None and found.appointment == "A1"


def test_an_unmapped_type_has_no_request() -> None:
    assert booking(siu("S12", reason="MRI", family="")).request is None


def test_a_language_without_a_template_is_ae_on_pid_15() -> None:
    with pytest.raises(MessageError) as caught:
        booking(siu("S12", language="fr"))
    assert caught.value.ack == "AE"
    assert [(p.segment, p.field, p.code) for p in caught.value.problems] == [("PID", 15, 103)]


def test_the_ack_names_each_problem_without_its_value() -> None:
    received = decode_frame(siu("S12", "X9", dob="19901345", family="Hidden").encode())
    with pytest.raises(MessageError) as caught:
        read_booking(received, HL7, CONFIG)
    ack = make_ack(received, "AE", caught.value.problems, str(caught.value), "ACK1")
    parsed = hl7.parse(ack)
    assert str(parsed.segment("MSA")(1)) == "AE" and str(parsed.segment("MSA")(2)) == "X9"
    assert str(parsed.segment("ERR")(2)) == "PID^1^7^1"
    assert str(parsed.segment("ERR")(3)).startswith("102^Data type error^HL70357")
    assert "19901345" not in ack and "Hidden" not in ack


def test_hl7_settings_name_every_problem() -> None:
    # The file's own mistakes, when it is loaded (the settings schema)...
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {
                "hl7": {
                    "file_to": "host-without-port",
                    "patient_id_type": 5,
                    "procedures": {"B": 3},
                    "document_type": "D S",
                }
            }
        )
    text = str(caught.value)
    for part in ("[hl7] file_to", "[hl7] patient_id_type", "[hl7] procedures: B",
                 "[hl7] document_type"):  # fmt: skip
        assert part in text
    # ...and a procedure or variant the templates do not have, when the listener starts.
    with pytest.raises(ConfigError) as caught:
        load_hl7_settings(
            parse_config({"hl7": {"procedures": {"A": "nosuch", "C": "hsg:nosuchvariant"}}})
        )
    assert "[hl7.procedures] A" in str(caught.value)
    assert "[hl7.procedures] C" in str(caught.value)
    assert load_hl7_settings(parse_config({"hl7": {"file_to": "[::1]:2576"}})).file_to == (
        "::1",
        2576,
    )


def test_the_shared_settings_text_loads(tmp_path: Path) -> None:
    from discharge.config import load_config

    path = tmp_path / "clinic.toml"
    path.write_text(SETTINGS, encoding="utf-8")
    assert load_hl7_settings(load_config(path)).sheet_for("hsg") == ("hsg", "")


_GOOD = siu("S12", "F1").encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(0, len(_GOOD) - 1), st.integers(0, 8), st.binary(max_size=6)),
        max_size=4,
    )
)
def test_damaged_messages_always_get_an_acknowledgement(
    edits: list[tuple[int, int, bytes]],
) -> None:
    """Cut, replace or insert bytes anywhere (separators, segment names, MSH-18...): reading
    never raises anything but MessageError, and there is always an acknowledgement."""
    data = bytearray(_GOOD)
    for at, cut, insert in edits:
        data[at : at + cut] = insert
    received = decode_frame(bytes(data))
    try:
        booking_found = read_booking(received, HL7, CONFIG) if received.message else None
        code, problems = "AA", []
        assert booking_found is None or booking_found.appointment
    except MessageError as exc:
        code, problems = exc.ack, exc.problems
    ack = make_ack(received, code, problems, "text", "ACK1")
    separator = ack[3]  # the message's own field separator, as it declared it
    assert ack.startswith("MSH") and f"\rMSA{separator}{code}{separator}" in ack
    assert ack.endswith("\r") and "\n" not in ack
